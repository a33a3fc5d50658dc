//! A one-hidden-layer perceptron with a softmax output, trained with Adam. Small enough to train in
//! seconds on this machine's two cores, deterministic for a seed, and stored as plain little-endian
//! floats.

use roadhex_schemas::rng::SplitMix64;

const MAGIC: &[u8; 8] = b"RHMLP01\0";

#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    inputs: usize,
    hidden: usize,
    outputs: usize,
    /// Input standardisation: x' = (x - mean) * scale.
    mean: Vec<f32>,
    scale: Vec<f32>,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { hidden: 64, epochs: 30, batch: 64, learning_rate: 1e-3, weight_decay: 1e-4, seed: 1 }
    }
}

/// Dot product in eight independent lanes: a plain sum of products is one serial chain of float
/// additions, which the compiler may not reorder into vector code. The hidden layer is most of
/// the sign model's time, in training and in use.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let ((ca, ta), (cb, tb)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let tail: f32 = ta.iter().zip(tb).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Adam state for one parameter vector.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Self {
        Self { m: vec![0.0; n], v: vec![0.0; n] }
    }

    fn step(&mut self, w: &mut [f32], g: &[f32], lr: f32, decay: f32, t: i32) {
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..w.len() {
            let gi = g[i] + decay * w[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
            w[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

impl Mlp {
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Class probabilities of one input.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let mut h = vec![0.0; self.hidden];
        let xs = self.standardize(x);
        self.hidden_layer(&xs, &mut h);
        self.output_layer(&h)
    }

    fn standardize(&self, x: &[f32]) -> Vec<f32> {
        x.iter().zip(&self.mean).zip(&self.scale).map(|((v, m), s)| (v - m) * s).collect()
    }

    fn hidden_layer(&self, xs: &[f32], h: &mut [f32]) {
        for (j, hj) in h.iter_mut().enumerate() {
            let z = dot(&self.w1[j * self.inputs..(j + 1) * self.inputs], xs) + self.b1[j];
            *hj = z.max(0.0);
        }
    }

    fn output_layer(&self, h: &[f32]) -> Vec<f32> {
        let mut z: Vec<f32> = (0..self.outputs)
            .map(|k| dot(&self.w2[k * self.hidden..(k + 1) * self.hidden], h) + self.b2[k])
            .collect();
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in &mut z {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in &mut z {
            *v /= sum;
        }
        z
    }

    /// Trains on `x` (rows of equal length) with labels in `0..outputs`, weighting each class
    /// inversely to its frequency so rare classes are not drowned out.
    pub fn train(x: &[Vec<f32>], y: &[usize], outputs: usize, cfg: &TrainConfig) -> Self {
        let inputs = x.first().map_or(0, Vec::len);
        let n = x.len().max(1);
        let mut mean = vec![0.0f32; inputs];
        let mut var = vec![0.0f32; inputs];
        for row in x {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n as f32;
            }
        }
        for row in x {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m) / n as f32;
            }
        }
        let scale = var.iter().map(|v| 1.0 / (v.sqrt() + 1e-3)).collect();
        let mut rng = SplitMix64(cfg.seed);
        let mut gauss = |sd: f32| {
            // Box–Muller from two uniforms.
            let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * sd
        };
        let hidden = cfg.hidden;
        let sd1 = (2.0 / inputs.max(1) as f32).sqrt();
        let sd2 = (2.0 / hidden.max(1) as f32).sqrt();
        let w1 = (0..hidden * inputs).map(|_| gauss(sd1)).collect();
        let w2 = (0..outputs * hidden).map(|_| gauss(sd2)).collect();
        let mut net = Self {
            inputs,
            hidden,
            outputs,
            mean,
            scale,
            w1,
            b1: vec![0.0; hidden],
            w2,
            b2: vec![0.0; outputs],
        };
        let mut counts = vec![0usize; outputs];
        for &c in y {
            if let Some(k) = counts.get_mut(c) {
                *k += 1;
            }
        }
        let present = counts.iter().filter(|c| **c > 0).count().max(1);
        let weight: Vec<f32> =
            counts.iter().map(|&c| if c == 0 { 0.0 } else { n as f32 / (present * c) as f32 }).collect();
        let xs: Vec<Vec<f32>> = x.iter().map(|r| net.standardize(r)).collect();
        net.fit(&xs, y, &weight, cfg, &mut SplitMix64(cfg.seed ^ 0x5eed));
        net
    }

    fn fit(&mut self, xs: &[Vec<f32>], y: &[usize], weight: &[f32], cfg: &TrainConfig, rng: &mut SplitMix64) {
        let (ni, nh, no) = (self.inputs, self.hidden, self.outputs);
        let (mut a1, mut ab1, mut a2, mut ab2) =
            (Adam::new(ni * nh), Adam::new(nh), Adam::new(nh * no), Adam::new(no));
        let mut order: Vec<usize> = (0..xs.len()).collect();
        let mut t = 0;
        let mut h = vec![0.0f32; nh];
        let mut dh = vec![0.0f32; nh];
        for _ in 0..cfg.epochs {
            // Fisher–Yates with the seeded generator.
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for batch in order.chunks(cfg.batch.max(1)) {
                let (mut g1, mut gb1) = (vec![0.0f32; ni * nh], vec![0.0f32; nh]);
                let (mut g2, mut gb2) = (vec![0.0f32; nh * no], vec![0.0f32; no]);
                let scale = 1.0 / batch.len() as f32;
                for &i in batch {
                    let (x, label) = (&xs[i], y[i]);
                    self.hidden_layer(x, &mut h);
                    let mut p = self.output_layer(&h);
                    let w = weight.get(label).copied().unwrap_or(1.0) * scale;
                    // Softmax cross-entropy: dz = p - onehot.
                    if let Some(pl) = p.get_mut(label) {
                        *pl -= 1.0;
                    }
                    dh.iter_mut().for_each(|v| *v = 0.0);
                    for (k, pk) in p.iter().enumerate() {
                        let dz = pk * w;
                        gb2[k] += dz;
                        let row = k * nh;
                        for j in 0..nh {
                            g2[row + j] += dz * h[j];
                            dh[j] += dz * self.w2[row + j];
                        }
                    }
                    for j in 0..nh {
                        if h[j] <= 0.0 {
                            continue;
                        }
                        gb1[j] += dh[j];
                        let row = &mut g1[j * ni..(j + 1) * ni];
                        for (g, xv) in row.iter_mut().zip(x) {
                            *g += dh[j] * xv;
                        }
                    }
                }
                t += 1;
                a1.step(&mut self.w1, &g1, cfg.learning_rate, cfg.weight_decay, t);
                ab1.step(&mut self.b1, &gb1, cfg.learning_rate, 0.0, t);
                a2.step(&mut self.w2, &g2, cfg.learning_rate, cfg.weight_decay, t);
                ab2.step(&mut self.b2, &gb2, cfg.learning_rate, 0.0, t);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for d in [self.inputs, self.hidden, self.outputs] {
            out.extend_from_slice(&u32::try_from(d).unwrap_or(u32::MAX).to_le_bytes());
        }
        for v in [&self.mean, &self.scale, &self.w1, &self.b1, &self.w2, &self.b2] {
            for f in v.iter() {
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
        out
    }

    /// Parses [`Mlp::to_bytes`] output; returns the network and the bytes after it.
    pub fn from_bytes(b: &[u8]) -> Option<(Self, &[u8])> {
        let rest = b.strip_prefix(MAGIC.as_slice())?;
        let dim = |i: usize| -> Option<usize> {
            let s = rest.get(i * 4..i * 4 + 4)?;
            usize::try_from(u32::from_le_bytes(s.try_into().ok()?)).ok()
        };
        let (inputs, hidden, outputs) = (dim(0)?, dim(1)?, dim(2)?);
        let mut rest = rest.get(12..)?;
        let mut take = |n: usize| -> Option<Vec<f32>> {
            let bytes = rest.get(..n.checked_mul(4)?)?;
            rest = &rest[n * 4..];
            Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let net = Self {
            inputs,
            hidden,
            outputs,
            mean: take(inputs)?,
            scale: take(inputs)?,
            w1: take(inputs.checked_mul(hidden)?)?,
            b1: take(hidden)?,
            w2: take(hidden.checked_mul(outputs)?)?,
            b2: take(outputs)?,
        };
        Some((net, rest))
    }
}

const COMMITTEE_MAGIC: &[u8; 8] = b"RHCMT01\0";

/// Networks of one shape trained alike from different seeds, their probabilities averaged. With a
/// few hundred real signs one network's scores move a lot with its seed (the operating point
/// lies where they crowd near 1); the average is steadier and ranks better.
#[derive(Debug, Clone, PartialEq)]
pub struct Committee(Vec<Mlp>);

impl Committee {
    /// `members` networks, each trained for `cfg.epochs` from seed `cfg.seed + k`.
    pub fn train(x: &[Vec<f32>], y: &[usize], outputs: usize, cfg: &TrainConfig, members: usize) -> Self {
        Self(
            (0..members.max(1) as u64)
                .map(|k| {
                    Mlp::train(x, y, outputs, &TrainConfig { seed: cfg.seed.wrapping_add(k), ..cfg.clone() })
                })
                .collect(),
        )
    }

    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let mut sum = vec![0.0f32; self.outputs()];
        for m in &self.0 {
            sum.iter_mut().zip(m.predict(x)).for_each(|(s, p)| *s += p);
        }
        let n = self.0.len().max(1) as f32;
        sum.iter_mut().for_each(|s| *s /= n);
        sum
    }

    pub fn inputs(&self) -> usize {
        self.0.first().map_or(0, Mlp::inputs)
    }

    pub fn outputs(&self) -> usize {
        self.0.first().map_or(0, Mlp::outputs)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = COMMITTEE_MAGIC.to_vec();
        out.extend_from_slice(&u32::try_from(self.0.len()).unwrap_or(u32::MAX).to_le_bytes());
        for m in &self.0 {
            out.extend_from_slice(&m.to_bytes());
        }
        out
    }

    /// Parses [`Committee::to_bytes`] output; members must agree in shape.
    pub fn from_bytes(b: &[u8]) -> Option<(Self, &[u8])> {
        let rest = b.strip_prefix(COMMITTEE_MAGIC.as_slice())?;
        let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        let mut rest = rest.get(4..)?;
        let mut members = Vec::new();
        for _ in 0..n {
            let (m, r) = Mlp::from_bytes(rest)?;
            members.push(m);
            rest = r;
        }
        let first = members.first()?;
        let same = members.iter().all(|m| m.inputs() == first.inputs() && m.outputs() == first.outputs());
        same.then_some((Self(members), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_nonlinear_rule_and_round_trips() {
        // XOR-like quadrants: not linearly separable, so the hidden layer has to do the work.
        let mut rng = SplitMix64(7);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            let (a, b) = (rng.unit() as f32 - 0.5, rng.unit() as f32 - 0.5);
            x.push(vec![a, b]);
            y.push(usize::from((a > 0.0) != (b > 0.0)));
        }
        let cfg = TrainConfig { hidden: 16, epochs: 60, learning_rate: 1e-2, ..TrainConfig::default() };
        let net = Mlp::train(&x, &y, 2, &cfg);
        let right = x.iter().zip(&y).filter(|(r, l)| {
            let p = net.predict(r);
            usize::from(p[1] > p[0]) == **l
        });
        assert!(right.count() > 1900);
        let bytes = net.to_bytes();
        let (back, rest) = Mlp::from_bytes(&bytes).expect("parse");
        assert!(rest.is_empty());
        assert_eq!(back, net);
        assert!(Mlp::from_bytes(&bytes[..bytes.len() - 1]).is_none());
        // Same seed, same network.
        assert_eq!(Mlp::train(&x, &y, 2, &cfg), net);
        let committee = Committee::train(&x, &y, 2, &cfg, 2);
        let p = committee.predict(&x[0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let bytes = committee.to_bytes();
        let (back, rest) = Committee::from_bytes(&bytes).expect("parse committee");
        assert!(rest.is_empty());
        assert_eq!(back, committee);
        assert!(Committee::from_bytes(&bytes[..bytes.len() - 1]).is_none());
    }
}
