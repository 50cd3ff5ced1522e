//! PyO3 bindings of the scheduler core: the only file that names pyo3.
//!
//! Arrays come in as contiguous read-only numpy views of one dtype each
//! (`python/kpod/schedule.py` coerces once), the work runs with the GIL
//! released, results go out as new numpy arrays. Every core error becomes a
//! `ValueError`; nothing here panics on user input.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::curriculum::{Curriculum, CurriculumConfig, CurriculumState, StageResult};
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

/// One curriculum stage, the record every consumer reads: `advance()`
/// returns it, the trainer logs it, `kpod_stages.jsonl` holds its
/// `to_dict()` one per line, and the report reads it back with `from_dict`.
/// Immutable; `selected` and `given_steps` come out as fresh int64 arrays.
#[pyclass(module = "kpod._kpod", name = "StageResult", frozen, eq)]
#[derive(PartialEq)]
struct PyStageResult {
    inner: StageResult,
}

/// The keys of `to_dict()`, in its order.
const STAGE_KEYS: [&str; 12] = [
    "stage",
    "selected",
    "given_steps",
    "budget_increase",
    "difficulty_added",
    "value",
    "evaluations",
    "budget",
    "written",
    "skipped",
    "eligible",
    "bound",
];

/// int64 values from a numpy int64 array (one copy) or any sequence of ints.
fn int_vec(arg: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Ok(a) = x.extract::<PyReadonlyArray1<'_, i64>>() {
        return Ok(a.as_array().to_vec());
    }
    x.extract::<Vec<i64>>()
        .map_err(|e| PyValueError::new_err(format!("{arg} must be a sequence of integers: {e}")))
}

#[pymethods]
impl PyStageResult {
    #[new]
    #[pyo3(signature = (*, stage, selected, given_steps, budget_increase, difficulty_added, value, evaluations, budget, written, skipped, eligible, bound))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        stage: u32,
        selected: &Bound<'_, PyAny>,
        given_steps: &Bound<'_, PyAny>,
        budget_increase: f64,
        difficulty_added: f64,
        value: f64,
        evaluations: u64,
        budget: f64,
        written: f64,
        skipped: bool,
        eligible: u64,
        bound: bool,
    ) -> PyResult<Self> {
        Ok(PyStageResult {
            inner: StageResult {
                stage,
                selected: int_vec("selected", selected)?,
                given_steps: int_vec("given_steps", given_steps)?,
                budget_increase,
                difficulty_added,
                value,
                evaluations,
                budget,
                written,
                skipped,
                eligible,
                bound,
            },
        })
    }

    /// The record from a `to_dict()` mapping (a `kpod_stages.jsonl` line).
    #[staticmethod]
    fn from_dict(d: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = d.py();
        let kwargs = PyDict::new(py);
        for key in STAGE_KEYS {
            let v = d.get_item(key).map_err(|_| {
                PyValueError::new_err(format!(
                    "StageResult.from_dict: missing key {key:?}; a stage record has {}",
                    STAGE_KEYS.join(", ")
                ))
            })?;
            kwargs.set_item(key, v)?;
        }
        let cls = py.get_type::<PyStageResult>();
        let obj = cls.call((), Some(&kwargs)).map_err(|e| {
            PyValueError::new_err(format!("StageResult.from_dict: {}", e.value(py)))
        })?;
        Ok(PyStageResult {
            inner: obj.cast::<PyStageResult>()?.get().inner.clone(),
        })
    }

    /// JSON-ready dict: ints, floats, bools, and the two arrays as lists of
    /// ints. `from_dict` reads it back unchanged (floats round-trip through
    /// JSON exactly).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = &self.inner;
        let d = PyDict::new(py);
        d.set_item("stage", r.stage)?;
        d.set_item("selected", PyList::new(py, &r.selected)?)?;
        d.set_item("given_steps", PyList::new(py, &r.given_steps)?)?;
        d.set_item("budget_increase", r.budget_increase)?;
        d.set_item("difficulty_added", r.difficulty_added)?;
        d.set_item("value", r.value)?;
        d.set_item("evaluations", r.evaluations)?;
        d.set_item("budget", r.budget)?;
        d.set_item("written", r.written)?;
        d.set_item("skipped", r.skipped)?;
        d.set_item("eligible", r.eligible)?;
        d.set_item("bound", r.bound)?;
        Ok(d)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let from_dict = py.get_type::<PyStageResult>().getattr("from_dict")?;
        Ok((from_dict, PyTuple::new(py, [self.to_dict(py)?])?))
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        let b = |x: bool| if x { "True" } else { "False" };
        format!(
            "StageResult(stage={}, selected=<{} questions>, given_steps=<{} questions>, \
             budget_increase={:?}, difficulty_added={:?}, value={:?}, evaluations={}, \
             budget={:?}, written={:?}, skipped={}, eligible={}, bound={})",
            r.stage,
            r.selected.len(),
            r.given_steps.len(),
            r.budget_increase,
            r.difficulty_added,
            r.value,
            r.evaluations,
            r.budget,
            r.written,
            b(r.skipped),
            r.eligible,
            b(r.bound),
        )
    }

    #[getter]
    fn stage(&self) -> u32 {
        self.inner.stage
    }

    #[getter]
    fn selected<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_slice(py, &self.inner.selected)
    }

    #[getter]
    fn given_steps<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_slice(py, &self.inner.given_steps)
    }

    #[getter]
    fn budget_increase(&self) -> f64 {
        self.inner.budget_increase
    }

    #[getter]
    fn difficulty_added(&self) -> f64 {
        self.inner.difficulty_added
    }

    #[getter]
    fn value(&self) -> f64 {
        self.inner.value
    }

    #[getter]
    fn evaluations(&self) -> u64 {
        self.inner.evaluations
    }

    #[getter]
    fn budget(&self) -> f64 {
        self.inner.budget
    }

    #[getter]
    fn written(&self) -> f64 {
        self.inner.written
    }

    #[getter]
    fn skipped(&self) -> bool {
        self.inner.skipped
    }

    #[getter]
    fn eligible(&self) -> u64 {
        self.inner.eligible
    }

    #[getter]
    fn bound(&self) -> bool {
        self.inner.bound
    }
}

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

    fn advance(&mut self, py: Python<'_>) -> PyResult<PyStageResult> {
        let inner = &mut self.inner;
        let r = py.detach(|| inner.advance())?;
        Ok(PyStageResult { inner: r })
    }

    fn rescore(
        &mut self,
        py: Python<'_>,
        step_difficulty: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        let d = slice("step_difficulty", &step_difficulty)?.to_vec();
        let inner = &mut self.inner;
        py.detach(|| inner.rescore(d))?;
        Ok(())
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

    /// {stage, given_steps, written, total_difficulty}; the facade adds
    /// its format tag and configuration.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.state_dict();
        let d = PyDict::new(py);
        d.set_item("stage", s.stage)?;
        d.set_item("given_steps", s.given_steps.into_pyarray(py))?;
        d.set_item("written", s.written)?;
        d.set_item("total_difficulty", s.total)?;
        Ok(d)
    }

    fn load_state_dict(&mut self, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let item = |key: &str| {
            state
                .get_item(key)
                .map_err(|_| PyValueError::new_err(format!("state_dict: missing key {key:?}")))
        };
        let given = item("given_steps")?;
        let given = given.extract::<PyReadonlyArray1<'_, i64>>()?;
        self.inner.load_state_dict(CurriculumState {
            stage: item("stage")?.extract()?,
            given_steps: slice("given_steps", &given)?.to_vec(),
            written: item("written")?.extract()?,
            total: item("total_difficulty")?.extract()?,
        })?;
        Ok(())
    }
}

#[pymodule]
fn _kpod(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(select, m)?)?;
    m.add_class::<PyCurriculum>()?;
    m.add_class::<PyStageResult>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
