//! `fmfast._fmfast`: thin PyO3 wrappers around `fmfast-core`, one file per concept.

use pyo3::prelude::*;

mod arrays;
mod bayes;
mod detached;
mod errors;
mod features;
mod fm;
mod fm_contract;
mod lent;
mod recordio;
mod tables;
mod text;
mod topk;

#[pymodule]
fn _fmfast(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    recordio::register(m)?;
    fm::register(m)?;
    fm_contract::register(m)?;
    bayes::register(m)?;
    text::register(m)?;
    topk::register(m)?;
    features::register(m)?;
    tables::register(m)?;
    Ok(())
}
