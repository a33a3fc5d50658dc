use super::cascade::CascadeDetector;
use super::{
    AnonymizeError, CenterFace, Detection, Detector, Kind, Models, RetinaFace, TextRowConfig, TextRowPlates,
};
use opencv::core::{Mat, Size};

/// A detector an ensemble can be configured with, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Member {
    /// Faces: CenterFace at native resolution (the default face detector).
    Centerface,
    /// Faces: RetinaFace-mobilenet, faster, weaker on small faces.
    Retinaface,
    /// Faces: Haar frontal face cascade (Debian opencv-data).
    HaarFace,
    /// Plates: character-row proposals + character count check.
    TextrowPlates,
    /// Plates: Haar `russian_plate_number` cascade (Debian opencv-data).
    HaarPlate,
}

impl Member {
    pub fn parse(name: &str) -> Result<Self, AnonymizeError> {
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| AnonymizeError::UnknownDetector(name.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnsembleConfig {
    pub members: Vec<Member>,
    pub face_threshold: f32,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        // The Haar plate cascade found no plate the text-row detector missed on the shared data
        // (at twice its cost), so it is available but off by default. Face threshold 0.3: faces
        // under 20 px score low, and an extra blurred box is cheap.
        Self { members: vec![Member::Centerface, Member::TextrowPlates], face_threshold: 0.3 }
    }
}

/// Runs every member on the frame; the result is the union of their detections.
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Box<dyn Detector>>,
}

impl Ensemble {
    pub fn new(members: Vec<Box<dyn Detector>>) -> Self {
        Self { members }
    }

    /// Builds the configured members; a missing model file fails here, at startup.
    pub fn from_config(models: &Models, cfg: &EnsembleConfig) -> Result<Self, AnonymizeError> {
        let members = cfg.members.iter().map(|m| build(models, cfg, *m)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(members))
    }

    pub fn members(&self) -> &[Box<dyn Detector>] {
        &self.members
    }

    /// Every member's version, joined; recorded with each frame.
    pub fn version(&self) -> String {
        self.members.iter().map(|m| m.version()).collect::<Vec<_>>().join("+")
    }

    pub fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError> {
        let mut all = Vec::new();
        for m in &self.members {
            all.extend(m.detect(bgr)?);
        }
        Ok(all)
    }
}

fn build(models: &Models, cfg: &EnsembleConfig, m: Member) -> Result<Box<dyn Detector>, AnonymizeError> {
    Ok(match m {
        Member::Centerface => Box::new(CenterFace::new(models, cfg.face_threshold)?),
        Member::Retinaface => Box::new(RetinaFace::new(models, cfg.face_threshold.max(0.5))?),
        Member::HaarFace => Box::new(CascadeDetector::new(
            "haar-face",
            Kind::Face,
            models.debian_cascade("haarcascade_frontalface_default.xml")?,
            3,
            Size::new(12, 12),
        )?),
        Member::TextrowPlates => Box::new(TextRowPlates::new(TextRowConfig::default())),
        Member::HaarPlate => Box::new(CascadeDetector::new(
            "haar-plate",
            Kind::Plate,
            models.debian_cascade("haarcascade_russian_plate_number.xml")?,
            3,
            Size::new(24, 8),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::imgcodecs;

    #[test]
    fn members_parse_and_missing_models_say_how_to_fetch() {
        assert_eq!(Member::parse("textrow-plates").expect("known"), Member::TextrowPlates);
        assert_eq!(Member::parse("nope").expect_err("unknown").code(), "unknown_detector");
        let err = Ensemble::from_config(&Models::new("/nonexistent/models"), &EnsembleConfig::default())
            .expect_err("no models");
        assert_eq!(err.code(), "model_missing");
        assert!(err.to_string().contains("deploy/models.sh"), "{err}");
    }

    #[test]
    fn two_threads_detect_the_same() {
        let ens = Ensemble::from_config(&Models::from_env(), &EnsembleConfig::default())
            .expect("run deploy/models.sh first");
        let path = roadhex_schemas::testdata::shared_data().join("plates_openalpr/us/car14.jpg");
        let img = imgcodecs::imread(&path, imgcodecs::IMREAD_COLOR).expect("read");
        let alone = ens.detect(&img).expect("detect");
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| ens.detect(&img).expect("detect"));
            let b = s.spawn(|| ens.detect(&img).expect("detect"));
            (a.join().expect("join"), b.join().expect("join"))
        });
        assert_eq!(a, alone);
        assert_eq!(b, alone);
        assert!(ens.version().contains("centerface") && ens.version().contains("textrow-plates"));
    }
}
