//! The KPOD progressive schedule (kpod-method section 4, Eqs. 9-13).
//!
//! Question i has n_i steps with difficulties d_{i,0..n_i}; c_i(t) leading
//! steps are given as input at stage t and the student writes the rest, whose
//! difficulty is h_i. H(t) = sum_i h_i; the budget is
//! D(t) = C0 + (B - C0) (t / T)^(p + 1) with B the total difficulty and
//! C0 = c0 B. Start: c_i(0) = max(n_i - delta, 0). Stage t <= T: the ground
//! set is the questions with c_i > 0; question i costs the difficulty of the
//! (up to) delta steps just before its written part, i.e. steps
//! max(c_i - delta, 0) .. c_i; the solver maximises
//! F(S) = sum_{i in S} cost_i + beta sum_k sqrt(|S ∩ C_k|) under
//! sum_{i in S} cost_i <= D(t) - H(t-1), and every chosen question moves those
//! steps (c_i <- max(c_i - delta, 0)). The stage is skipped when
//! D(t) - H(t-1) <= 0. Stage t > T: every question gets c_i = 0 and H = B.

use crate::error::{check_len, check_nonneg_finite, Error, Result};
use crate::objective::{DenseClusters, Problem};
use crate::select::{check_options, select, Algorithm, Options};

/// Knobs of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurriculumConfig {
    /// T: the number of progressive stages (>= 1).
    pub stages: u32,
    /// Exponent p of Eq. 10 (> -1; paper 0.5).
    pub p: f64,
    /// C0 as a fraction of B, in [0, 1] (paper 0.3).
    pub c0: f64,
    /// Diversity weight beta (>= 0; paper 12).
    pub beta: f64,
    /// Steps that move per chosen question and stage (>= 1).
    pub delta_steps: u32,
    /// eps of the threshold solver.
    pub eps: f64,
    /// Solver.
    pub algorithm: Algorithm,
}

/// What one call of [`Curriculum::advance`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StageResult {
    /// The stage t that ran (1-based).
    pub stage: u32,
    /// Questions whose given steps shrank, in pick order.
    pub selected: Vec<i64>,
    /// c_i(t) of every question after the stage.
    pub given_steps: Vec<i64>,
    /// D(t) - H(t-1), the knapsack budget (may be <= 0: skipped stage).
    pub budget_increase: f64,
    /// H(t) - H(t-1).
    pub difficulty_added: f64,
    /// F of the selected set.
    pub value: f64,
    /// Marginal-gain evaluations of the solver.
    pub evaluations: u64,
    /// D(t).
    pub budget: f64,
    /// H(t).
    pub written: f64,
    /// Whether the stage was skipped because D(t) <= H(t-1).
    pub skipped: bool,
    /// Questions that could move a step at this stage (given steps > 0
    /// before it).
    pub eligible: u64,
    /// Whether the budget held some of them back (`selected` < `eligible`).
    /// Only a bound stage lets the difficulties, beta and the clusters shape
    /// the schedule; after stage T every eligible question moves, so it is
    /// false there.
    pub bound: bool,
}

/// A resumable snapshot of the mutable part of a [`Curriculum`]
/// ([`Curriculum::state_dict`], [`Curriculum::load_state_dict`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CurriculumState {
    /// Stages run so far.
    pub stage: u32,
    /// c_i of every question.
    pub given_steps: Vec<i64>,
    /// H, bit for bit.
    pub written: f64,
    /// B of the curriculum that saved the state (a fingerprint).
    pub total: f64,
}

/// c_i(t) of every question plus everything needed to run the next stage.
#[derive(Debug, Clone)]
pub struct Curriculum {
    difficulty: Vec<f64>,
    /// n_i, the steps of every question (their offsets are running sums:
    /// every loop over the steps walks the questions in order).
    steps: Vec<u32>,
    clusters: DenseClusters,
    cfg: CurriculumConfig,
    total: f64,
    /// c_i (<= n_i); 4 bytes a question, widened to int64 at the API.
    given: Vec<u32>,
    stage: u32,
    written: f64,
    /// The per-stage cost of every question, kept between stages so a
    /// stage does not fault in fresh pages.
    scratch: Vec<f64>,
}

fn check_config(cfg: &CurriculumConfig) -> Result<()> {
    let scalar = |arg, value: f64, expected| Error::InvalidScalar {
        arg,
        value,
        expected,
    };
    if cfg.stages == 0 {
        return Err(scalar("stages", 0.0, "an integer >= 1"));
    }
    if !(cfg.p.is_finite() && cfg.p > -1.0) {
        return Err(scalar("p", cfg.p, "finite and > -1"));
    }
    if !(cfg.c0 >= 0.0 && cfg.c0 <= 1.0) {
        return Err(scalar(
            "c0",
            cfg.c0,
            "a fraction of the total difficulty in [0, 1]",
        ));
    }
    if !(cfg.beta.is_finite() && cfg.beta >= 0.0) {
        return Err(scalar("beta", cfg.beta, "finite and >= 0"));
    }
    if cfg.delta_steps == 0 {
        return Err(scalar("delta_steps", 0.0, "an integer >= 1"));
    }
    check_options(&Options {
        budget: 0.0,
        algorithm: cfg.algorithm,
        eps: cfg.eps,
    })
}

impl Curriculum {
    /// Builds the curriculum at stage 0. `step_offsets` are CSR offsets
    /// (length n + 1, from 0 to `step_difficulty.len()`, non-decreasing).
    pub fn new(
        step_difficulty: Vec<f64>,
        step_offsets: &[i64],
        clusters: &[i64],
        cfg: CurriculumConfig,
    ) -> Result<Self> {
        check_config(&cfg)?;
        check_nonneg_finite("step_difficulty", &step_difficulty)?;
        if step_offsets.is_empty() {
            return Err(Error::InvalidOption {
                arg: "step_offsets",
                message: "must have length n_questions + 1 (at least [0])".to_string(),
            });
        }
        let n = step_offsets.len() - 1;
        check_len("clusters", clusters.len(), n, "step_offsets (minus one)")?;
        let bad = |index: usize, value: i64, expected| Error::InvalidElement {
            arg: "step_offsets",
            index,
            value: value.to_string(),
            expected,
        };
        if step_offsets[0] != 0 {
            return Err(bad(0, step_offsets[0], "non-decreasing, starting at 0"));
        }
        for i in 0..n {
            if step_offsets[i + 1] < step_offsets[i] {
                return Err(bad(
                    i + 1,
                    step_offsets[i + 1],
                    "non-decreasing, starting at 0",
                ));
            }
        }
        let last = step_offsets[n];
        if last as u64 != step_difficulty.len() as u64 {
            return Err(bad(
                n,
                last,
                "non-decreasing and ending at len(step_difficulty)",
            ));
        }
        let mut steps = Vec::with_capacity(n);
        for (i, pair) in step_offsets.windows(2).enumerate() {
            let n_i = u32::try_from(pair[1] - pair[0]).map_err(|_| {
                bad(
                    i + 1,
                    pair[1],
                    "at most 4294967295 above the previous offset (a question has at most 2^32 - 1 steps)",
                )
            })?;
            steps.push(n_i);
        }
        let clusters = DenseClusters::from_ids("clusters", clusters)?;
        let total: f64 = step_difficulty.iter().sum();
        if !total.is_finite() {
            // Every budget D(t) and stage cost derives from sums of these.
            return Err(Error::InvalidOption {
                arg: "step_difficulty",
                message: "the sum overflows float64; rescale the array".to_string(),
            });
        }
        let given: Vec<u32> = steps
            .iter()
            .map(|&n_i| n_i.saturating_sub(cfg.delta_steps))
            .collect();
        let mut cur = Curriculum {
            difficulty: step_difficulty,
            steps,
            clusters,
            cfg,
            total,
            given,
            stage: 0,
            written: 0.0,
            scratch: Vec::new(),
        };
        cur.written = cur.written_from_scratch();
        Ok(cur)
    }

    /// H computed from c_i (question order, then step order).
    fn written_from_scratch(&self) -> f64 {
        let mut h = 0.0;
        let mut start = 0usize;
        for (&c, &n_i) in self.given.iter().zip(&self.steps) {
            let end = start + n_i as usize;
            for &d in &self.difficulty[start + c as usize..end] {
                h += d;
            }
            start = end;
        }
        h
    }

    /// Number of questions.
    pub fn n_questions(&self) -> usize {
        self.given.len()
    }

    /// B, the total difficulty.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Stages run so far (t of the last stage; 0 before the first).
    pub fn stage(&self) -> u32 {
        self.stage
    }

    /// H(t) of the current state.
    pub fn written(&self) -> f64 {
        self.written
    }

    /// c_i of every question (a fresh int64 copy; the curriculum keeps them
    /// as u32, 4 bytes a question).
    pub fn given_steps(&self) -> Vec<i64> {
        self.given.iter().map(|&c| i64::from(c)).collect()
    }

    /// The configuration.
    pub fn config(&self) -> &CurriculumConfig {
        &self.cfg
    }

    /// D(t) = C0 + (B - C0) (t / T)^(p + 1) for t <= T, and B after.
    pub fn budget(&self, t: u64) -> f64 {
        let big_t = u64::from(self.cfg.stages);
        if t >= big_t {
            return self.total;
        }
        let c0 = self.cfg.c0 * self.total;
        let frac = t as f64 / big_t as f64;
        c0 + (self.total - c0) * frac.powf(self.cfg.p + 1.0)
    }

    /// Runs stage t = stage() + 1.
    pub fn advance(&mut self) -> Result<StageResult> {
        let t = self
            .stage
            .checked_add(1)
            .ok_or_else(|| Error::InvalidState {
                message: "stage counter overflow".to_string(),
            })?;
        let d_t = self.budget(u64::from(t));
        let increase = d_t - self.written;
        let delta = self.cfg.delta_steps;
        let forced = t > self.cfg.stages;
        // Ground set: every question, costing the steps that would move
        // (all of them after stage T); a question with no given steps left
        // costs +inf, which no budget admits, so the solver drops it as it
        // drops any item dearer than the budget. Item i is question i: no
        // index map or cluster copy, and the same picks as a ground set of
        // the live questions alone (their index order is the same).
        let step = if forced { u32::MAX } else { delta };
        let mut costs = std::mem::take(&mut self.scratch);
        costs.clear();
        costs.reserve(self.given.len());
        let mut start = 0usize;
        let mut eligible = 0u64;
        for (&c, &n_i) in self.given.iter().zip(&self.steps) {
            eligible += u64::from(c > 0);
            costs.push(if c > 0 {
                let hi = start + c as usize;
                let lo = start + c.saturating_sub(step) as usize;
                let mut cost = 0.0;
                for &d in &self.difficulty[lo..hi] {
                    cost += d;
                }
                cost
            } else {
                f64::INFINITY
            });
            start += n_i as usize;
        }
        let problem = Problem::trusted_kpod(&costs, &self.clusters, self.cfg.beta);
        let (selected, value, added, evaluations, skipped): (Vec<i64>, f64, f64, u64, bool) =
            if forced {
                let all: Vec<u32> = (0..self.given.len() as u32)
                    .filter(|&i| self.given[i as usize] > 0)
                    .collect();
                let (v, a) = problem.value_and_cost(&all);
                (all.iter().map(|&i| i64::from(i)).collect(), v, a, 0, false)
            } else if increase > 0.0 {
                let s = select(
                    &problem,
                    &Options {
                        budget: increase,
                        algorithm: self.cfg.algorithm,
                        eps: self.cfg.eps,
                    },
                )?;
                (s.indices, s.value, s.cost, s.evaluations, false)
            } else {
                (Vec::new(), 0.0, 0.0, 0, true)
            };
        for &q in &selected {
            let g = &mut self.given[q as usize];
            *g = if forced { 0 } else { g.saturating_sub(delta) };
        }
        self.scratch = costs;
        self.written = if forced {
            self.total
        } else {
            self.written + added
        };
        self.stage = t;
        let bound = (selected.len() as u64) < eligible;
        Ok(StageResult {
            stage: t,
            selected,
            given_steps: self.given_steps(),
            budget_increase: increase,
            difficulty_added: added,
            value,
            evaluations,
            budget: d_t,
            written: self.written,
            skipped,
            eligible,
            bound,
        })
    }

    /// Replaces the step difficulties (same questions, same step counts),
    /// keeping the stage and every c_i; B and H are recomputed from the new
    /// difficulties as at construction. Later stages budget and cost with
    /// the new values (re-scoring by the current student).
    pub fn rescore(&mut self, step_difficulty: Vec<f64>) -> Result<()> {
        check_len(
            "step_difficulty",
            step_difficulty.len(),
            self.difficulty.len(),
            "the curriculum's step_offsets",
        )?;
        check_nonneg_finite("step_difficulty", &step_difficulty)?;
        let total: f64 = step_difficulty.iter().sum();
        if !total.is_finite() {
            return Err(Error::InvalidOption {
                arg: "step_difficulty",
                message: "the sum overflows float64; rescale the array".to_string(),
            });
        }
        self.difficulty = step_difficulty;
        self.total = total;
        self.written = self.written_from_scratch();
        Ok(())
    }

    /// Snapshot for [`Curriculum::load_state_dict`].
    pub fn state_dict(&self) -> CurriculumState {
        CurriculumState {
            stage: self.stage,
            given_steps: self.given_steps(),
            written: self.written,
            total: self.total,
        }
    }

    /// Restores a snapshot taken from a curriculum over the same data.
    pub fn load_state_dict(&mut self, s: CurriculumState) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidState { message });
        if s.total.to_bits() != self.total.to_bits() {
            return bad(format!(
                "it was saved by a curriculum with total difficulty {} but this one has {}; \
                 load it into a curriculum built from the same step_difficulty",
                s.total, self.total
            ));
        }
        if s.given_steps.len() != self.given.len() {
            return bad(format!(
                "given_steps has length {} but this curriculum has {} questions",
                s.given_steps.len(),
                self.given.len()
            ));
        }
        for (i, (&c, &n_i)) in s.given_steps.iter().zip(&self.steps).enumerate() {
            if c < 0 || c > i64::from(n_i) {
                return bad(format!(
                    "given_steps[{i}] = {c} is outside [0, {n_i}] (question {i} has {n_i} steps)"
                ));
            }
        }
        if !s.written.is_finite() || s.written < 0.0 {
            return bad(format!("written = {} must be finite and >= 0", s.written));
        }
        self.stage = s.stage;
        // Every c_i is in [0, n_i], so it fits.
        self.given = s.given_steps.iter().map(|&c| c as u32).collect();
        self.written = s.written;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(stages: u32) -> CurriculumConfig {
        CurriculumConfig {
            stages,
            p: 0.5,
            c0: 0.3,
            beta: 12.0,
            delta_steps: 1,
            eps: 0.1,
            algorithm: Algorithm::Threshold,
        }
    }

    fn toy() -> (Vec<f64>, Vec<i64>, Vec<i64>) {
        let mut d = Vec::new();
        let mut off = vec![0i64];
        let mut cl = Vec::new();
        for q in 0..40 {
            let n = 1 + q % 5;
            for s in 0..n {
                d.push(0.5 + ((q * 7 + s * 3) % 11) as f64 / 4.0);
            }
            off.push(d.len() as i64);
            cl.push((q % 3) as i64);
        }
        (d, off, cl)
    }

    #[test]
    fn schedule_invariants_and_resume() {
        let (d, off, cl) = toy();
        let mut a = Curriculum::new(d.clone(), &off, &cl, cfg(6)).unwrap();
        assert_eq!(a.budget(0), 0.3 * a.total());
        assert_eq!(a.budget(6), a.total());
        let mut prev = a.given_steps();
        let mut saved = None;
        for t in 1..=8u32 {
            let h_prev = a.written();
            let r = a.advance().unwrap();
            assert_eq!(r.stage, t);
            for (c, p) in r.given_steps.iter().zip(&prev) {
                assert!(*c >= 0 && c <= p);
            }
            if h_prev <= r.budget {
                assert!(r.written <= r.budget * (1.0 + 1e-12));
            }
            prev = r.given_steps.clone();
            if t == 3 {
                saved = Some(a.state_dict());
            }
        }
        assert!(prev.iter().all(|&c| c == 0));
        assert_eq!(a.written(), a.total());
        let mut b = Curriculum::new(d.clone(), &off, &cl, cfg(6)).unwrap();
        b.load_state_dict(saved.unwrap()).unwrap();
        let mut c = Curriculum::new(d, &off, &cl, cfg(6)).unwrap();
        for _ in 0..3 {
            c.advance().unwrap();
        }
        for _ in 0..5 {
            assert_eq!(b.advance().unwrap(), c.advance().unwrap());
        }
    }

    #[test]
    fn eligible_and_bound() {
        let (d, off, cl) = toy();
        let mut a = Curriculum::new(d, &off, &cl, cfg(6)).unwrap();
        let mut bound_seen = false;
        for _ in 0..8 {
            let before = a.given_steps();
            let r = a.advance().unwrap();
            let eligible = before.iter().filter(|&&c| c > 0).count() as u64;
            assert_eq!(r.eligible, eligible);
            assert_eq!(r.bound, (r.selected.len() as u64) < eligible);
            if r.stage > 6 {
                assert!(!r.bound);
            }
            bound_seen |= r.bound;
        }
        assert!(bound_seen);
    }

    #[test]
    fn rescore_keeps_progress() {
        let (d, off, cl) = toy();
        let mut a = Curriculum::new(d.clone(), &off, &cl, cfg(6)).unwrap();
        a.advance().unwrap();
        let given = a.given_steps();
        let new: Vec<f64> = d.iter().map(|x| 2.0 * x).collect();
        a.rescore(new.clone()).unwrap();
        assert_eq!((a.stage(), a.given_steps()), (1, given));
        let fresh = Curriculum::new(new.clone(), &off, &cl, cfg(6)).unwrap();
        assert_eq!(a.total(), fresh.total());
        assert_eq!(a.written(), a.written_from_scratch());
        assert!(a.rescore(new[1..].to_vec()).is_err());
    }

    #[test]
    fn bad_inputs() {
        let (d, off, cl) = toy();
        assert!(Curriculum::new(d.clone(), &off[1..], &cl, cfg(3)).is_err());
        assert!(Curriculum::new(d.clone(), &off, &cl[1..], cfg(3)).is_err());
        assert!(Curriculum::new(d.clone(), &off, &cl, cfg(0)).is_err());
        let mut bad = d.clone();
        bad[3] = f64::NAN;
        let e = Curriculum::new(bad, &off, &cl, cfg(3)).unwrap_err();
        assert!(e.to_string().contains("step_difficulty[3]"), "{e}");
        let e = Curriculum::new(d, &[], &[], cfg(3)).unwrap_err();
        assert!(e.to_string().contains("step_offsets"));
    }
}
