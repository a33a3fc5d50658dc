//! Well-Known Binary for the two geometry types the tables store (little-endian, 2D, CRS84).

/// WKB of a point.
pub fn point(lon: f64, lat: f64) -> Vec<u8> {
    let mut v = Vec::with_capacity(21);
    v.push(1);
    v.extend(1u32.to_le_bytes());
    v.extend(lon.to_le_bytes());
    v.extend(lat.to_le_bytes());
    v
}

/// WKB of a line string through `(lon, lat)` points.
pub fn line_string(points: &[(f64, f64)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + 16 * points.len());
    v.push(1);
    v.extend(2u32.to_le_bytes());
    v.extend(u32::try_from(points.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (lon, lat) in points {
        v.extend(lon.to_le_bytes());
        v.extend(lat.to_le_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn point_layout() {
        let p = super::point(1.0, 2.0);
        assert_eq!(p.len(), 21);
        assert_eq!(&p[..5], &[1, 1, 0, 0, 0]);
        assert_eq!(super::line_string(&[(0.0, 0.0), (1.0, 1.0)]).len(), 41);
    }
}
