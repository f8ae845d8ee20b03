"""Custom objects through the official Python client, as a user's script drives them: a CRD
created with the typed ApiextensionsV1Api, then its objects through CustomObjectsApi (with a
watch) and the dynamic client (list, get, merge patch, JSON patch, status, delete). Prints
PASS."""
import time

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

GROUP = "python.example.com"

config.load_kube_config()
api = client.ApiClient()
ext = client.ApiextensionsV1Api(api)
crd = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gadgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer", "minimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}},
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}},
        }],
    },
}
# The typed model refuses a response missing a field it requires (status.acceptedNames...).
created = ext.create_custom_resource_definition(crd)
assert created.metadata.name == f"gadgets.{GROUP}", created.metadata
for _ in range(100):
    got = ext.read_custom_resource_definition(f"gadgets.{GROUP}")
    conds = {c.type: c.status for c in (got.status.conditions or [])}
    if conds.get("Established") == "True":
        break
    time.sleep(0.1)
else:
    raise AssertionError(f"not established: {got.status}")

objs = client.CustomObjectsApi(api)
objs.create_namespaced_custom_object(GROUP, "v1", "default", "gadgets", {
    "apiVersion": f"{GROUP}/v1", "kind": "Gadget",
    "metadata": {"name": "g1"}, "spec": {"size": 1, "tags": ["x"]},
})
try:
    objs.create_namespaced_custom_object(GROUP, "v1", "default", "gadgets", {
        "apiVersion": f"{GROUP}/v1", "kind": "Gadget",
        "metadata": {"name": "g2"}, "spec": {"size": -1},
    })
    raise AssertionError("a negative size was accepted")
except ApiException as e:
    assert e.status == 422, e
    assert "spec.size in body should be greater than or equal to 0" in e.body, e.body

# A watch of custom objects, as controllers written in Python run one.
w = watch.Watch()
seen = []
for event in w.stream(objs.list_namespaced_custom_object, GROUP, "v1", "default", "gadgets",
                      timeout_seconds=5):
    seen.append((event["type"], event["object"]["metadata"]["name"]))
    w.stop()
assert seen == [("ADDED", "g1")], seen

dyn = dynamic.DynamicClient(api)
gadgets = dyn.resources.get(api_version=f"{GROUP}/v1", kind="Gadget")
listed = gadgets.get(namespace="default")
assert [i.metadata.name for i in listed.items] == ["g1"], listed
gadgets.patch(namespace="default", name="g1", body={"spec": {"size": 4}},
              content_type="application/merge-patch+json")
gadgets.patch(namespace="default", name="g1",
              body=[{"op": "add", "path": "/spec/tags/-", "value": "y"}],
              content_type="application/json-patch+json")
got = gadgets.get(namespace="default", name="g1")
assert got.spec.size == 4 and list(got.spec.tags) == ["x", "y"], got.spec
objs.patch_namespaced_custom_object_status(GROUP, "v1", "default", "gadgets", "g1",
                                           {"status": {"ready": True}})
got = objs.get_namespaced_custom_object(GROUP, "v1", "default", "gadgets", "g1")
assert got["status"] == {"ready": True}, got
objs.delete_namespaced_custom_object(GROUP, "v1", "default", "gadgets", "g1")
ext.delete_custom_resource_definition(f"gadgets.{GROUP}")
print("PASS")
