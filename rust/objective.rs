//! The objective F(S) = sum_{i in S} a_i + beta * sum_k g(sum_{i in S ∩ C_k} v_i).
//!
//! `a_i >= 0` is the modular part (KPOD: the item's cost), `v_i >= 0` the
//! item's weight inside its cluster (KPOD: 1), `g` a concave function with
//! g(0) = 0. F is monotone submodular, and a marginal gain only depends on
//! the current weight W_k of the item's own cluster, so it costs O(1).

use crate::error::{check_item_count, check_len, check_nonneg_finite, Error, Result};

/// The concave function g applied to each cluster's weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Concave {
    /// g(x) = sqrt(x) (KPOD, Eq. 12).
    Sqrt,
    /// g(x) = ln(1 + x).
    Log1p,
    /// g(x) = x^q with q in (0, 1]; q = 1 makes F modular.
    Power(f64),
}

impl Concave {
    /// Rejects a power outside (0, 1].
    pub fn validate(self) -> Result<()> {
        match self {
            Concave::Power(q) if !(q > 0.0 && q <= 1.0) => Err(Error::InvalidScalar {
                arg: "concave",
                value: q,
                expected: "a power q in (0, 1]",
            }),
            _ => Ok(()),
        }
    }

    /// g(x).
    #[inline]
    pub fn g(self, x: f64) -> f64 {
        match self {
            Concave::Sqrt => x.sqrt(),
            Concave::Log1p => x.ln_1p(),
            Concave::Power(q) => x.powf(q),
        }
    }

    /// g(w + v) - g(w), written to avoid cancellation where it matters
    /// (sqrt: v / (sqrt(w + v) + sqrt(w)); log1p: ln(1 + v / (1 + w))).
    #[inline]
    pub fn delta(self, w: f64, v: f64) -> f64 {
        if v == 0.0 {
            return 0.0;
        }
        match self {
            Concave::Sqrt => v / ((w + v).sqrt() + w.sqrt()),
            Concave::Log1p => (v / (1.0 + w)).ln_1p(),
            Concave::Power(q) => (w + v).powf(q) - w.powf(q),
        }
    }
}

/// Cluster ids mapped onto 0..k (ascending order of the original ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseClusters {
    /// Dense id of every item.
    pub ids: Vec<u32>,
    /// Number of dense ids (an upper bound when the ids were used as they are).
    pub count: usize,
}

impl DenseClusters {
    /// Validates (`>= 0`) and densifies cluster ids. Small ids (at most
    /// `2 n + 1024`) are used directly, so empty ids only cost a zero weight;
    /// larger ones are renumbered by rank. Either way the order of clusters
    /// is the order of their ids.
    pub fn from_ids(arg: &'static str, clusters: &[i64]) -> Result<Self> {
        let n = clusters.len();
        check_item_count(arg, n)?;
        // One branch-free pass converts the ids (as if they were below 2^31,
        // the usual case) and ORs their bits together: no high bit set means
        // every id is in [0, 2^31) and the u32 maximum is the true one.
        // Otherwise a second pass finds the range; the first negative id is
        // searched only on failure, and large ids are renumbered afterwards.
        let mut ids = vec![0u32; n];
        let mut bits = 0u64;
        let mut small_max = 0u32;
        for (d, &c) in ids.iter_mut().zip(clusters) {
            *d = c as u32;
            bits |= c as u64;
            small_max = small_max.max(c as u32);
        }
        let (min, max) = if n == 0 {
            (0, -1)
        } else if bits >> 31 == 0 {
            (0, i64::from(small_max))
        } else {
            clusters
                .iter()
                .fold((i64::MAX, -1i64), |(lo, hi), &c| (lo.min(c), hi.max(c)))
        };
        if min < 0 {
            let (i, &c) = clusters
                .iter()
                .enumerate()
                .find(|(_, &c)| c < 0)
                .unwrap_or((0, &min));
            return Err(Error::InvalidElement {
                arg,
                index: i,
                value: c.to_string(),
                expected: "a cluster id >= 0",
            });
        }
        let direct_limit = 2 * n as u64 + 1024;
        if max < 0 {
            return Ok(DenseClusters {
                ids: Vec::new(),
                count: 0,
            });
        }
        if (max as u64) < direct_limit {
            return Ok(DenseClusters {
                ids,
                count: max as usize + 1,
            });
        }
        let mut uniq = clusters.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        let ids = clusters
            .iter()
            .map(|c| uniq.binary_search(c).unwrap_or(0) as u32)
            .collect();
        Ok(DenseClusters {
            ids,
            count: uniq.len(),
        })
    }
}

/// Cluster weights W_k of a set, plus (when every v_i = 1) the cached
/// increment g(W_k + 1) - g(W_k) per cluster, so a marginal gain is one
/// multiply-add instead of a transcendental call. Results are bit-identical
/// to evaluating the increment each time.
#[derive(Debug, Clone)]
pub struct Weights {
    /// W_k.
    pub w: Vec<f64>,
    unit: Option<Vec<f64>>,
}

/// A validated instance: the objective over items 0..n with their costs.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    /// c_i >= 0.
    pub costs: &'a [f64],
    /// a_i >= 0 (the costs themselves when the caller gave none).
    pub modular: &'a [f64],
    /// v_i >= 0, or `None` for v = 1.
    pub values: Option<&'a [f64]>,
    /// Dense cluster id of each item.
    pub cluster: &'a [u32],
    /// Number of dense cluster ids.
    pub n_clusters: usize,
    /// beta >= 0.
    pub beta: f64,
    /// g.
    pub concave: Concave,
    /// Whether `modular` is `costs` (the KPOD default).
    pub modular_is_cost: bool,
    /// Whether many items may cost +inf (never fit) among the candidates
    /// ([`Problem::trusted_kpod`]); the candidate scans then avoid a
    /// per-item branch.
    pub(crate) sparse: bool,
}

impl Weights {
    /// The cache of unit increments g(W_k + 1) - g(W_k), present when every v_i = 1.
    #[inline]
    pub fn unit_cache(&self) -> Option<&[f64]> {
        self.unit.as_deref()
    }

    /// g(W_k + 1) - g(W_k) when every v_i = 1, else 0.
    #[inline]
    pub fn unit_increment(&self, k: usize) -> f64 {
        self.unit.as_ref().map_or(0.0, |u| u[k])
    }
}

impl<'a> Problem<'a> {
    /// Validates every array and scalar and returns the instance.
    pub fn new(
        costs: &'a [f64],
        modular: Option<&'a [f64]>,
        values: Option<&'a [f64]>,
        clusters: &'a DenseClusters,
        beta: f64,
        concave: Concave,
    ) -> Result<Self> {
        let n = costs.len();
        check_item_count("costs", n)?;
        let cost_sum = check_nonneg_finite("costs", costs)?;
        check_len("clusters", clusters.ids.len(), n, "costs")?;
        let mut modular_sum = None;
        if let Some(m) = modular {
            check_len("modular", m.len(), n, "costs")?;
            modular_sum = Some(check_nonneg_finite("modular", m)?);
        }
        let mut values_sum = None;
        if let Some(v) = values {
            check_len("values", v.len(), n, "costs")?;
            values_sum = Some(check_nonneg_finite("values", v)?);
        }
        if !(beta.is_finite() && beta >= 0.0) {
            return Err(Error::InvalidScalar {
                arg: "beta",
                value: beta,
                expected: "finite and >= 0",
            });
        }
        concave.validate()?;
        for (arg, sum) in [
            ("costs", Some(cost_sum)),
            ("modular", modular_sum),
            ("values", values_sum),
        ] {
            if sum.is_some_and(|s| !s.is_finite()) {
                return Err(Error::InvalidOption {
                    arg,
                    message: "the sum overflows float64; rescale the array".to_string(),
                });
            }
        }
        // Ids from `DenseClusters::from_ids` are always in range; a struct
        // built by hand is checked (one branch-free pass; the search only when it
        // flags an id).
        let limit = u32::try_from(clusters.count).unwrap_or(u32::MAX);
        let over = clusters
            .ids
            .iter()
            .fold(false, |acc, &k| acc | (k >= limit));
        let bad = over
            .then(|| clusters.ids.iter().find(|&&k| k as usize >= clusters.count))
            .flatten();
        if let Some(bad) = bad {
            return Err(Error::InvalidOption {
                arg: "clusters",
                message: format!("dense id {bad} out of range {}", clusters.count),
            });
        }
        Ok(Problem {
            costs,
            modular: modular.unwrap_or(costs),
            values,
            cluster: &clusters.ids,
            n_clusters: clusters.count,
            beta,
            concave,
            modular_is_cost: modular.is_none(),
            sparse: false,
        })
    }

    /// The KPOD objective (modular = costs, v = 1, g = sqrt) over costs the
    /// crate computed itself, without the validation pass of [`Problem::new`]:
    /// the caller guarantees every cost is >= 0 and not NaN, and may use
    /// +inf for an item that never fits (every algorithm drops items dearer
    /// than the budget before looking at them). `clusters` comes from
    /// [`DenseClusters::from_ids`] over as many items as `costs`; `beta` is
    /// finite and >= 0.
    pub(crate) fn trusted_kpod(costs: &'a [f64], clusters: &'a DenseClusters, beta: f64) -> Self {
        debug_assert_eq!(costs.len(), clusters.ids.len());
        debug_assert!(costs.iter().all(|&c| c >= 0.0));
        Problem {
            costs,
            modular: costs,
            values: None,
            cluster: &clusters.ids,
            n_clusters: clusters.count,
            beta,
            concave: Concave::Sqrt,
            modular_is_cost: true,
            sparse: true,
        }
    }

    /// Number of items.
    #[inline]
    pub fn len(&self) -> usize {
        self.costs.len()
    }

    /// Whether there are no items.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.costs.is_empty()
    }

    /// v_i.
    #[inline]
    pub fn value(&self, i: usize) -> f64 {
        match self.values {
            Some(v) => v[i],
            None => 1.0,
        }
    }

    /// Marginal gain F(S + i) - F(S) given the cluster weights `w` of S.
    #[inline]
    pub fn gain(&self, i: usize, w: &[f64]) -> f64 {
        let k = self.cluster[i] as usize;
        self.modular[i] + self.beta * self.concave.delta(w[k], self.value(i))
    }

    /// Empty-set weights (with the unit-increment cache when v = 1).
    pub fn weights(&self) -> Weights {
        let w = vec![0.0; self.n_clusters];
        let unit = match self.values {
            None => Some(vec![self.concave.delta(0.0, 1.0); self.n_clusters]),
            Some(_) => None,
        };
        Weights { w, unit }
    }

    /// Marginal gain of item i given `ws` (same value as [`Problem::gain`]).
    #[inline(always)]
    pub fn gain_w(&self, i: usize, ws: &Weights) -> f64 {
        self.gain_akv(self.cluster[i] as usize, self.modular[i], self.value(i), ws)
    }

    /// Marginal gain of an item of cluster k with modular part a and weight
    /// v given `ws` (the same float as [`Problem::gain_w`] for the item whose
    /// `modular` and `value` these are), for callers that carry them.
    #[inline(always)]
    pub fn gain_akv(&self, k: usize, a: f64, v: f64, ws: &Weights) -> f64 {
        match &ws.unit {
            Some(u) => a + self.beta * u[k],
            None => a + self.beta * self.concave.delta(ws.w[k], v),
        }
    }

    /// Adds item i to `ws`.
    #[inline(always)]
    pub fn add_w(&self, i: usize, ws: &mut Weights) {
        self.add_kw(i, self.cluster[i] as usize, ws);
    }

    /// Adds item i, whose cluster is k, to `ws`.
    #[inline(always)]
    pub fn add_kw(&self, i: usize, k: usize, ws: &mut Weights) {
        ws.w[k] += self.value(i);
        if let Some(u) = &mut ws.unit {
            u[k] = self.concave.delta(ws.w[k], 1.0);
        }
    }

    /// Adds item i to the cluster weights.
    #[inline]
    pub fn add(&self, i: usize, w: &mut [f64]) {
        let k = self.cluster[i] as usize;
        w[k] += self.value(i);
    }

    /// F(S) for S given in pick order: the modular sum in that order plus
    /// beta times the sum of g over clusters in id order.
    pub fn value_of(&self, set: &[u32]) -> f64 {
        self.value_and_cost(set).0
    }

    /// Sum of the costs of S, added in pick order.
    pub fn cost_of(&self, set: &[u32]) -> f64 {
        self.value_and_cost(set).1
    }

    /// ([`Problem::value_of`], [`Problem::cost_of`]) in one pass over S.
    pub fn value_and_cost(&self, set: &[u32]) -> (f64, f64) {
        let mut w = vec![0.0; self.n_clusters];
        let (mut modular, mut cost) = (0.0, 0.0);
        for &i in set {
            let i = i as usize;
            let c = self.costs[i];
            cost += c;
            modular += if self.modular_is_cost {
                c
            } else {
                self.modular[i]
            };
            self.add(i, &mut w);
        }
        (self.combine(modular, w.iter().copied()), cost)
    }

    /// F(S) from its modular sum (in pick order) and, for v = 1, every
    /// cluster's count: the same floats as [`Problem::value_and_cost`].
    pub fn value_of_counts(&self, modular: f64, counts: &[u32]) -> f64 {
        self.combine(modular, counts.iter().map(|&x| f64::from(x)))
    }

    /// `modular + beta * sum_k g(W_k)`, the clusters in id order: the one
    /// formula behind both of the above, so they agree bit for bit.
    fn combine(&self, modular: f64, weights: impl Iterator<Item = f64>) -> f64 {
        let concave: f64 = weights.map(|x| self.concave.g(x)).sum();
        modular + self.beta * concave
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_matches_difference() {
        for g in [Concave::Sqrt, Concave::Log1p, Concave::Power(0.3)] {
            for (w, v) in [(0.0, 1.0), (3.0, 2.5), (1e6, 1.0)] {
                let d = g.delta(w, v);
                let naive = g.g(w + v) - g.g(w);
                assert!(
                    (d - naive).abs() <= 1e-9 * naive.abs().max(1e-12),
                    "{g:?} {w} {v}"
                );
            }
            assert_eq!(g.delta(5.0, 0.0), 0.0);
        }
    }

    #[test]
    fn clusters_renumber_large_ids() {
        let d = DenseClusters::from_ids("clusters", &[1 << 40, 7, 1 << 40]).unwrap();
        assert_eq!(d.ids, vec![1, 0, 1]);
        assert_eq!(d.count, 2);
        let e = DenseClusters::from_ids("clusters", &[3, -1]).unwrap_err();
        assert!(e.to_string().contains("clusters[1]"));
    }

    #[test]
    fn cluster_ids_near_the_u32_and_i32_limits() {
        // Ids at or above 2^31 leave the one-pass path; they are renumbered
        // (or used directly when small enough), never truncated.
        for (ids, want, count) in [
            (vec![(1i64 << 31) + 5, 2, 2], vec![1, 0, 0], 2),
            (
                vec![(1i64 << 32) + 1, 1, (1i64 << 32) + 1],
                vec![1, 0, 1],
                2,
            ),
            (vec![0, 9, 4], vec![0, 9, 4], 10),
            (vec![], vec![], 0),
        ] {
            let d = DenseClusters::from_ids("clusters", &ids).unwrap();
            assert_eq!((d.ids, d.count), (want, count), "{ids:?}");
        }
        for ids in [vec![5, i64::MIN, 1], vec![1 << 40, -3], vec![-1]] {
            let e = DenseClusters::from_ids("clusters", &ids).unwrap_err();
            let at = ids.iter().position(|&c| c < 0).unwrap();
            assert!(e.to_string().contains(&format!("clusters[{at}]")), "{e}");
        }
    }

    #[test]
    fn every_kind_of_bad_cost_is_found_at_any_position() {
        // The fast scan sees a negative in its minimum, an infinity in its
        // maximum and a NaN in its sum; check each in every lane and in the
        // remainder, and that -0.0 and huge finite costs pass.
        for n in [1usize, 4, 7, 9] {
            let cl = DenseClusters::from_ids("clusters", &vec![0; n]).unwrap();
            for at in 0..n {
                for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e-300, -2.0] {
                    let mut c = vec![1.0; n];
                    c[at] = bad;
                    let e = Problem::new(&c, None, None, &cl, 1.0, Concave::Sqrt).unwrap_err();
                    assert!(
                        e.to_string().contains(&format!("costs[{at}]")),
                        "{bad} at {at}: {e}"
                    );
                }
                let mut c = vec![1.0; n];
                c[at] = -0.0;
                assert!(Problem::new(&c, None, None, &cl, 1.0, Concave::Sqrt).is_ok());
                c[at] = f64::MAX / 4.0;
                assert!(Problem::new(&c, None, None, &cl, 1.0, Concave::Sqrt).is_ok());
            }
        }
    }

    #[test]
    fn hand_built_clusters_out_of_range_are_an_error() {
        let cl = DenseClusters {
            ids: vec![0, 5, 1],
            count: 2,
        };
        let e = Problem::new(&[1.0, 1.0, 1.0], None, None, &cl, 1.0, Concave::Sqrt).unwrap_err();
        assert!(e.to_string().contains("dense id 5"), "{e}");
        let big = [1e308, 1e308, 1.0];
        let ok = DenseClusters::from_ids("clusters", &[0, 1, 1]).unwrap();
        let e = Problem::new(&big, None, None, &ok, 1.0, Concave::Sqrt).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }

    #[test]
    fn value_is_modular_plus_concave() {
        let costs = [1.0, 2.0, 3.0];
        let cl = DenseClusters::from_ids("clusters", &[0, 0, 1]).unwrap();
        let p = Problem::new(&costs, None, None, &cl, 2.0, Concave::Sqrt).unwrap();
        let v = p.value_of(&[0, 1, 2]);
        assert!((v - (6.0 + 2.0 * (2f64.sqrt() + 1.0))).abs() < 1e-12);
        assert!(Problem::new(&costs, None, None, &cl, f64::NAN, Concave::Sqrt).is_err());
        assert!(Problem::new(&costs, None, None, &cl, 1.0, Concave::Power(1.5)).is_err());
    }
}
