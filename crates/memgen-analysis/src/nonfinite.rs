//! Reading back the non-finite numbers of a record: serde_json writes NaN and ±∞ as null, so a field
//! that may hold one is read with `#[serde(deserialize_with = "crate::nonfinite::null_as_nan")]` (or
//! `null_as_infinity`) and comes back as the value it stood for.

use serde::Deserialize;

/// A JSON number, or null as NaN.
pub fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A JSON number, or null as +∞ (e.g. a KL divergence of a degenerate model, or a PSNR at MSE 0).
pub fn null_as_infinity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct R {
        #[serde(deserialize_with = "super::null_as_nan")]
        a: f64,
        #[serde(deserialize_with = "super::null_as_infinity")]
        b: f64,
    }

    #[test]
    fn null_reads_as_the_non_finite_value() {
        let r: R = serde_json::from_str(r#"{"a": null, "b": null}"#).unwrap();
        assert!(r.a.is_nan() && r.b == f64::INFINITY);
        let r: R = serde_json::from_str(r#"{"a": 1.5, "b": -2}"#).unwrap();
        assert_eq!((r.a, r.b), (1.5, -2.0));
    }
}
