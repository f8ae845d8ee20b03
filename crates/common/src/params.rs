//! Query parameters as apimachinery's parameter codec decodes them into option structs
//! (`ListOptions`, `PodLogOptions`, `PodExecOptions`, `PatchOptions`, `DeleteOptions`).

/// A boolean parameter: absent is false; `0` and `false` in any case are false; every other
/// value, the empty string included, is true (apimachinery's `Convert_Slice_string_To_bool`).
/// So `watch=True` (the Python client), `watch=1` and a bare `watch=` all start a watch.
pub fn query_bool(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
    }
}

/// A boolean pointer parameter (`*bool` in the options struct): absent is `None`.
pub fn query_opt_bool(v: Option<&str>) -> Option<bool> {
    v.map(|v| query_bool(Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_decode_as_the_parameter_codec() {
        for v in [
            "true", "True", "TRUE", "1", "t", "T", "yes", "y", "on", "", "anything",
        ] {
            assert!(query_bool(Some(v)), "{v:?} is true");
        }
        for v in ["false", "False", "FALSE", "fAlSe", "0"] {
            assert!(!query_bool(Some(v)), "{v:?} is false");
        }
        assert!(!query_bool(None));
        assert_eq!(query_opt_bool(None), None);
        assert_eq!(query_opt_bool(Some("False")), Some(false));
        assert_eq!(query_opt_bool(Some("True")), Some(true));
    }
}
