//! Integer pro-rata splits with deterministic remainders (largest remainder; ties by position).

/// Splits `total` in proportion to `weights`. The result sums to `total` exactly unless every
/// weight is 0 (then all shares are 0). Leftover units go to the largest fractional parts; equal
/// fractions go to the earlier position, so callers fix the order (e.g. sorted by id).
pub fn pro_rata(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut rems = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let num = u128::from(total) * u128::from(w);
        shares.push(u64::try_from(num / sum).unwrap_or(u64::MAX));
        rems.push((num % sum, i));
    }
    let given: u64 = shares.iter().sum();
    let left = usize::try_from(total - given).unwrap_or(usize::MAX);
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rems.iter().take(left) {
        shares[i] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_exactly_and_breaks_ties_by_position() {
        assert_eq!(pro_rata(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(pro_rata(10, &[0, 0]), vec![0, 0]);
        assert_eq!(pro_rata(7, &[2, 0, 5]), vec![2, 0, 5]);
        let w: Vec<u64> = (1..200).map(|i| i * 7919 % 1013).collect();
        let s = pro_rata(u64::MAX, &w);
        assert_eq!(s.iter().map(|&x| u128::from(x)).sum::<u128>(), u128::from(u64::MAX));
        // Each share is within one unit of the exact proportion.
        let sum: u128 = w.iter().map(|&x| u128::from(x)).sum();
        for (share, weight) in s.iter().zip(&w) {
            let exact = u128::from(u64::MAX) * u128::from(*weight) / sum;
            assert!(u128::from(*share) - exact <= 1);
        }
    }
}
