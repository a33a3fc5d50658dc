//! The 43 GTSRB classes (ids as in the benchmark's ReadMe) plus `other_sign`, and each class's shape,
//! which fixes its physical size for ranging.

/// The class of a sign seen but not recognised as one of the 43.
pub const OTHER_SIGN: &str = "other_sign";

/// The plate shape of a class: it sets the sign's standard size (German StVO, size 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Round plates: prohibitory, mandatory and end-of-restriction signs.
    Round,
    /// Upward triangles: warning signs.
    Triangle,
    /// The downward "give way" triangle.
    InvertedTriangle,
    /// The octagonal stop sign.
    Octagon,
    /// The "priority road" diamond.
    Diamond,
}

impl Shape {
    /// Nominal (width, height) of the plate's bounding box in metres.
    pub fn size_m(self) -> (f64, f64) {
        match self {
            // 600–750 mm plates in and out of town: the middle of the range.
            Self::Round => (0.70, 0.70),
            // 900 mm sides; the height of an equilateral triangle is √3/2 of its side.
            Self::Triangle | Self::InvertedTriangle => (0.90, 0.78),
            Self::Octagon => (0.75, 0.75),
            // 600 mm sides turned by 45°.
            Self::Diamond => (0.85, 0.85),
        }
    }
}

/// Class names by GTSRB id.
pub const NAMES: [&str; 43] = [
    "speed_limit_20",
    "speed_limit_30",
    "speed_limit_50",
    "speed_limit_60",
    "speed_limit_70",
    "speed_limit_80",
    "speed_limit_80_end",
    "speed_limit_100",
    "speed_limit_120",
    "no_overtaking",
    "no_overtaking_heavy",
    "priority_intersection",
    "priority_road",
    "yield",
    "stop",
    "no_entry_vehicles",
    "no_entry_heavy",
    "do_not_enter",
    "warning_sign",
    "single_curve_left",
    "single_curve_right",
    "double_curve_left",
    "rough_road",
    "slippery_road",
    "narrows_right",
    "workers_in_road",
    "traffic_light",
    "pedestrian_warning",
    "children_warning",
    "cyclists_warning",
    "icy_road",
    "animals_warning",
    "restrictions_end",
    "right",
    "left",
    "straight",
    "straight_right",
    "straight_left",
    "right_obstacle",
    "left_obstacle",
    "roundabout",
    "no_overtaking_end",
    "no_overtaking_heavy_end",
];

/// The name of class `id`, or [`OTHER_SIGN`] outside 0..43.
pub fn name(id: usize) -> &'static str {
    NAMES.get(id).copied().unwrap_or(OTHER_SIGN)
}

/// The id of a class name.
pub fn id(name: &str) -> Option<usize> {
    NAMES.iter().position(|n| *n == name)
}

/// The plate shape of a class; `other_sign` is ranged as a round plate.
pub fn shape(name: &str) -> Shape {
    match id(name) {
        Some(11 | 18..=31) => Shape::Triangle,
        Some(12) => Shape::Diamond,
        Some(13) => Shape::InvertedTriangle,
        Some(14) => Shape::Octagon,
        _ => Shape::Round,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_ids_and_shapes() {
        assert_eq!(super::name(14), "stop");
        assert_eq!(super::name(43), super::OTHER_SIGN);
        assert_eq!(super::id("roundabout"), Some(40));
        assert_eq!(super::shape("yield"), super::Shape::InvertedTriangle);
        assert_eq!(super::shape("children_warning"), super::Shape::Triangle);
        assert_eq!(super::shape("speed_limit_50"), super::Shape::Round);
    }
}
