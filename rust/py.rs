//! PyO3 bindings of the scheduler core: the only file that names pyo3.
//!
//! Arrays come in as contiguous read-only numpy views of one dtype each
//! (`python/kpod/schedule.py` coerces once), the work runs with the GIL
//! released, results go out as new numpy arrays. Every core error becomes a
//! `ValueError`; nothing here panics on user input.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::curriculum::{Curriculum, CurriculumConfig, CurriculumState};
use crate::error::Error;
use crate::objective::{Concave, DenseClusters, Problem};
use crate::select::{select as core_select, Algorithm, Options};

/// The extension's allocator (the pure-Rust library leaves the choice to its
/// user). Selections allocate and free arrays of n items every call; mimalloc
/// reuses those pages where the system allocator returns them to the OS and
/// faults them in again (10-15 % of a 1M-item `threshold` call).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.to_string())
    }
}

fn slice<'a, T: numpy::Element>(
    arg: &'static str,
    a: &'a PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "{arg} must be a C-contiguous 1-D array; pass np.ascontiguousarray({arg})"
        ))
    })
}

fn concave_of(kind: &str, power: f64) -> Result<Concave, Error> {
    match kind {
        "sqrt" => Ok(Concave::Sqrt),
        "log1p" => Ok(Concave::Log1p),
        "power" => Ok(Concave::Power(power)),
        other => Err(Error::InvalidOption {
            arg: "concave",
            message: format!("unknown concave function {other:?}; use sqrt, log1p or power"),
        }),
    }
}

/// (indices, value, cost, evaluations)
type SelectOut<'py> = (Bound<'py, PyArray1<i64>>, f64, f64, u64);

#[pyfunction]
#[pyo3(signature = (costs, clusters, *, budget, beta, modular, values, concave, power, algorithm, eps))]
#[allow(clippy::too_many_arguments)]
fn select<'py>(
    py: Python<'py>,
    costs: PyReadonlyArray1<'py, f64>,
    clusters: PyReadonlyArray1<'py, i64>,
    budget: f64,
    beta: f64,
    modular: Option<PyReadonlyArray1<'py, f64>>,
    values: Option<PyReadonlyArray1<'py, f64>>,
    concave: &str,
    power: f64,
    algorithm: &str,
    eps: f64,
) -> PyResult<SelectOut<'py>> {
    let costs_s = slice("costs", &costs)?;
    let clusters_s = slice("clusters", &clusters)?;
    let modular_s = modular.as_ref().map(|m| slice("modular", m)).transpose()?;
    let values_s = values.as_ref().map(|v| slice("values", v)).transpose()?;
    let concave = concave_of(concave, power)?;
    let algorithm: Algorithm = algorithm.parse()?;
    let result = py.detach(|| {
        let cl = DenseClusters::from_ids("clusters", clusters_s)?;
        crate::error::check_len("clusters", clusters_s.len(), costs_s.len(), "costs")?;
        let problem = Problem::new(costs_s, modular_s, values_s, &cl, beta, concave)?;
        core_select(
            &problem,
            &Options {
                budget,
                algorithm,
                eps,
            },
        )
    })?;
    Ok((
        result.indices.into_pyarray(py),
        result.value,
        result.cost,
        result.evaluations,
    ))
}

/// Native curriculum; `kpod.schedule.Curriculum` wraps it.
#[pyclass(module = "kpod._kpod", name = "Curriculum")]
struct PyCurriculum {
    inner: Curriculum,
}

/// (stage, selected, given_steps, budget_increase, difficulty_added, value,
///  evaluations, budget, written, skipped)
type StageOut<'py> = (
    u32,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    f64,
    f64,
    f64,
    u64,
    f64,
    f64,
    bool,
);

/// (stage, given_steps, written, total)
type StateOut<'py> = (u32, Bound<'py, PyArray1<i64>>, f64, f64);

#[pymethods]
impl PyCurriculum {
    #[new]
    #[pyo3(signature = (step_difficulty, step_offsets, clusters, *, stages, p, c0, beta, delta_steps, eps, algorithm))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        step_difficulty: PyReadonlyArray1<'_, f64>,
        step_offsets: PyReadonlyArray1<'_, i64>,
        clusters: PyReadonlyArray1<'_, i64>,
        stages: u32,
        p: f64,
        c0: f64,
        beta: f64,
        delta_steps: u32,
        eps: f64,
        algorithm: &str,
    ) -> PyResult<Self> {
        let d = slice("step_difficulty", &step_difficulty)?;
        let o = slice("step_offsets", &step_offsets)?;
        let c = slice("clusters", &clusters)?;
        let cfg = CurriculumConfig {
            stages,
            p,
            c0,
            beta,
            delta_steps,
            eps,
            algorithm: algorithm.parse()?,
        };
        let inner = py.detach(|| Curriculum::new(d.to_vec(), o, c, cfg))?;
        Ok(PyCurriculum { inner })
    }

    fn advance<'py>(&mut self, py: Python<'py>) -> PyResult<StageOut<'py>> {
        let inner = &mut self.inner;
        let r = py.detach(|| inner.advance())?;
        Ok((
            r.stage,
            r.selected.into_pyarray(py),
            r.given_steps.into_pyarray(py),
            r.budget_increase,
            r.difficulty_added,
            r.value,
            r.evaluations,
            r.budget,
            r.written,
            r.skipped,
        ))
    }

    fn budget(&self, t: u64) -> f64 {
        self.inner.budget(t)
    }

    #[getter]
    fn stage(&self) -> u32 {
        self.inner.stage()
    }

    #[getter]
    fn written(&self) -> f64 {
        self.inner.written()
    }

    #[getter]
    fn total_difficulty(&self) -> f64 {
        self.inner.total()
    }

    #[getter]
    fn n_questions(&self) -> usize {
        self.inner.n_questions()
    }

    #[getter]
    fn given_steps<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.given_steps().into_pyarray(py)
    }

    fn get_state<'py>(&self, py: Python<'py>) -> StateOut<'py> {
        let s = self.inner.state();
        (s.stage, s.given_steps.into_pyarray(py), s.written, s.total)
    }

    fn set_state(
        &mut self,
        stage: u32,
        given_steps: PyReadonlyArray1<'_, i64>,
        written: f64,
        total: f64,
    ) -> PyResult<()> {
        let given = slice("given_steps", &given_steps)?.to_vec();
        self.inner.load_state(CurriculumState {
            stage,
            given_steps: given,
            written,
            total,
        })?;
        Ok(())
    }
}

#[pymodule]
fn _kpod(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(select, m)?)?;
    m.add_class::<PyCurriculum>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
