//! The general compile/evaluate API.

use serde_json::json;

use crate::compile;

#[test]
fn general_api() {
    let p = compile(
        "object.spec.replicas <= params.maxReplicas",
        &["object", "oldObject", "params"],
    )
    .unwrap();
    assert!(p.uses("object") && p.uses("params") && !p.uses("oldObject"));
    let object = json!({"spec": {"replicas": 3}});
    assert!(
        p.eval_bool(&[("object", &object), ("params", &json!({"maxReplicas": 5}))])
            .unwrap()
    );
    assert!(
        !p.eval_bool(&[("object", &object), ("params", &json!({"maxReplicas": 2}))])
            .unwrap()
    );

    let msg = compile("'replicas: ' + string(object.spec.replicas)", &["object"]).unwrap();
    assert_eq!(
        msg.eval_string(&[("object", &object)]).unwrap(),
        "replicas: 3"
    );
    let v = compile("object.spec", &["object"]).unwrap();
    assert_eq!(
        v.eval(&[("object", &object)]).unwrap(),
        json!({"replicas": 3})
    );
    assert_eq!(
        compile("quantity('1.5Gi')", &[])
            .unwrap()
            .eval(&[])
            .unwrap(),
        json!("1610612736")
    );

    let err = compile("object.x == request.y", &["object"]).unwrap_err();
    assert_eq!(
        err,
        "ERROR: <input>:1:13: undeclared reference to 'request' (in container '')"
    );
    assert!(
        compile("object.", &["object"])
            .unwrap_err()
            .starts_with("ERROR: <input>:1:")
    );
}
