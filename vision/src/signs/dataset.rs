//! Readers for the two benchmark layouts: GTSDB scenes (`gt.txt` of `name;left;top;right;bottom;class`,
//! images beside it or in `images/`, as .ppm or converted .jpg) and GTSRB crops (per-class folders of
//! images with a `GT-*.csv` of `Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`).

use crate::error::{Result, VisionError};
use opencv::core::Rect;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One image and its annotated signs (box, GTSRB class id).
#[derive(Debug, Clone)]
pub struct Labelled {
    pub image: PathBuf,
    pub signs: Vec<(Rect, usize)>,
}

fn bad(dir: &Path, reason: impl Into<String>) -> VisionError {
    VisionError::SignData { dir: dir.display().to_string(), reason: reason.into() }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "ppm" | "jpg" | "jpeg" | "png"))
}

fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    for e in entries {
        let p = e.map_err(|e| bad(dir, e.to_string()))?.path();
        if p.is_file() && is_image(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned()
}

fn num(dir: &Path, line: usize, field: &str) -> Result<i32> {
    field.trim().parse().map_err(|_| bad(dir, format!("line {line}: {field:?} is not a number")))
}

fn rect(dir: &Path, line: usize, f: &[&str]) -> Result<Rect> {
    let (l, t, r, b) =
        (num(dir, line, f[0])?, num(dir, line, f[1])?, num(dir, line, f[2])?, num(dir, line, f[3])?);
    if r <= l || b <= t || l < 0 || t < 0 {
        return Err(bad(dir, format!("line {line}: empty or negative box")));
    }
    // The benchmarks give inclusive corners.
    Ok(Rect::new(l, t, r - l + 1, b - t + 1))
}

fn class(dir: &Path, line: usize, f: &str) -> Result<usize> {
    let c = num(dir, line, f)?;
    usize::try_from(c)
        .ok()
        .filter(|c| *c < 43)
        .ok_or_else(|| bad(dir, format!("line {line}: class {c} is not 0..42")))
}

/// Every image of a GTSDB-format directory, in name order; images without a `gt.txt` line have no
/// sign (the benchmark's true negatives).
pub fn gtsdb(dir: &Path) -> Result<Vec<Labelled>> {
    let gt = std::fs::read_to_string(dir.join("gt.txt")).map_err(|e| bad(dir, format!("gt.txt: {e}")))?;
    let mut by_stem: BTreeMap<String, Labelled> = BTreeMap::new();
    for p in images_in(dir)?.into_iter().chain(images_in(&dir.join("images"))?) {
        by_stem.entry(stem(&p)).or_insert(Labelled { image: p, signs: Vec::new() });
    }
    for (i, line) in gt.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(';').collect();
        if f.len() != 6 {
            return Err(bad(dir, format!("gt.txt line {}: expected 6 fields", i + 1)));
        }
        let key = stem(Path::new(f[0]));
        let entry = by_stem
            .get_mut(&key)
            .ok_or_else(|| bad(dir, format!("gt.txt names {}, which is missing", f[0])))?;
        entry.signs.push((rect(dir, i + 1, &f[1..5])?, class(dir, i + 1, f[5])?));
    }
    if by_stem.is_empty() {
        return Err(bad(dir, "no images"));
    }
    Ok(by_stem.into_values().collect())
}

/// Every annotated crop under a GTSRB-format directory, in path order.
pub fn gtsrb(dir: &Path) -> Result<Vec<Labelled>> {
    let mut csvs = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| bad(&d, e.to_string()))? {
            let p = e.map_err(|e| bad(&d, e.to_string()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("GT-") && n.ends_with(".csv"))
            {
                csvs.push(p);
            }
        }
    }
    csvs.sort();
    let mut out = Vec::new();
    for csv in csvs {
        let folder = csv.parent().unwrap_or(dir);
        let text = std::fs::read_to_string(&csv).map_err(|e| bad(folder, e.to_string()))?;
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(';').collect();
            if f.len() != 8 {
                return Err(bad(folder, format!("{} line {}: expected 8 fields", csv.display(), i + 1)));
            }
            let image = folder.join(f[0]);
            if image.is_file() {
                out.push(Labelled {
                    image,
                    signs: vec![(rect(folder, i + 1, &f[3..7])?, class(folder, i + 1, f[7])?)],
                });
            }
        }
    }
    if out.is_empty() {
        return Err(bad(dir, "no GT-*.csv rows with their images"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_layouts() {
        let data = roadhex_schemas::testdata::shared_data();
        let data = data.as_path();
        let scenes = gtsdb(&data.join("signs_gtsdb")).expect("gtsdb");
        assert_eq!(scenes.len(), 100);
        assert_eq!(scenes.iter().map(|s| s.signs.len()).sum::<usize>(), 137);
        let crops = gtsrb(&data.join("signs_gtsrb_crops")).expect("gtsrb");
        assert!(crops.len() >= 43 * 3);
        assert!(crops.iter().all(|c| c.signs.len() == 1));
        let err = gtsdb(&data.join("signs_gtsrb_crops")).expect_err("no gt.txt");
        assert_eq!(err.code(), "sign_data_invalid");
    }
}
