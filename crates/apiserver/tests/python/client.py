"""The official Python client (`kubernetes`, pinned by tests/python_client.rs) against rkube.

Every step is something a user's script does; the typed API deserializes each response into
its model, which refuses objects that lack a field the OpenAPI schema requires. Exits non-zero
with the failing step's traceback on any difference from Kubernetes' behaviour.
"""

import json
import re
import sys
import threading

from kubernetes import client, config, dynamic, utils, watch
from kubernetes.client.rest import ApiException

NS = "py"  # made by the test, with its default ServiceAccount


def step(name):
    print(f"-- {name}", flush=True)


def expect_status(e, code, body):
    """The error's Status body, byte for byte as Kubernetes writes it."""
    assert e.status == code, (e.status, e.body)
    want = json.dumps(body, separators=(",", ":")) + "\n"
    got = e.body.decode() if isinstance(e.body, bytes) else e.body
    assert got == want, f"\n got {got!r}\nwant {want!r}"


def typed_api(api, api_version):
    """The typed API class for a group/version, named as the client's generator names it."""
    group, _, version = api_version.rpartition("/")
    group = "".join(w.capitalize() for w in group.removesuffix(".k8s.io").split(".")) or "Core"
    return getattr(client, f"{group}{version.capitalize()}Api")(api)


def main():
    config.load_kube_config()
    api = client.ApiClient()
    core = client.CoreV1Api(api)

    step("create and delete a namespace")
    ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-other")))
    assert ns.status.phase == "Active" and ns.spec.finalizers == ["kubernetes"], ns
    core.delete_namespace("py-other")

    step("watch.Watch().stream sees ADDED, MODIFIED and DELETED")
    events = []
    ready = threading.Event()

    def watcher():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, NS, timeout_seconds=30):
            if ev["object"].metadata.name == "marker":
                ready.set()  # the watch is live: what follows is seen as it happens
                continue
            if ev["object"].metadata.name != "watched":
                continue
            events.append((ev["type"], ev["object"].data))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=watcher)
    t.start()
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="marker")))
    assert ready.wait(20), "the watch never delivered an event"
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched", labels={"app": "py"}),
                            data={"a": "1"})
    core.create_namespaced_config_map(NS, cm)
    core.patch_namespaced_config_map("watched", NS, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("watched", NS)
    t.join(30)
    assert not t.is_alive(), f"the watch never ended: {events}"
    assert [e[0] for e in events] == ["ADDED", "MODIFIED", "DELETED"], events
    assert events[1][1] == {"a": "2"}, events

    step("create, get, list, replace")
    core.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="a", labels={"set": "one"}), data={"k": "v"}))
    got = core.read_namespaced_config_map("a", NS)
    assert got.data == {"k": "v"} and got.metadata.uid, got
    listed = core.list_namespaced_config_map(NS, label_selector="set=one")
    assert [i.metadata.name for i in listed.items] == ["a"], listed
    got.data["k2"] = "v2"
    replaced = core.replace_namespaced_config_map("a", NS, got)
    assert replaced.data == {"k": "v", "k2": "v2"}, replaced

    step("the errors read as Kubernetes writes them")
    try:
        core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a")))
        raise AssertionError("created twice")
    except ApiException as e:
        expect_status(e, 409, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "configmaps \"a\" already exists", "reason": "AlreadyExists",
                               "details": {"name": "a", "kind": "configmaps"}, "code": 409})
    try:
        core.read_namespaced_config_map("missing", NS)
        raise AssertionError("found")
    except ApiException as e:
        expect_status(e, 404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "configmaps \"missing\" not found", "reason": "NotFound",
                               "details": {"name": "missing", "kind": "configmaps"}, "code": 404})
    stale = core.read_namespaced_config_map("a", NS)
    core.patch_namespaced_config_map("a", NS, {"data": {"k": "newer"}})
    try:
        core.replace_namespaced_config_map("a", NS, stale)
        raise AssertionError("a stale replace won")
    except ApiException as e:
        expect_status(e, 409, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again",
                               "reason": "Conflict", "details": {"name": "a", "kind": "configmaps"}, "code": 409})
    apps = client.AppsV1Api(api)
    try:
        apps.create_namespaced_deployment(NS, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
            "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        raise AssertionError("an invalid deployment was created")
    except ApiException as e:
        expect_status(e, 422, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "Deployment.apps \"bad\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                               "reason": "Invalid",
                               "details": {"name": "bad", "group": "apps", "kind": "Deployment", "causes": [
                                   {"reason": "FieldValueInvalid",
                                    "message": "Invalid value: -1: must be greater than or equal to 0",
                                    "field": "spec.replicas"}]},
                               "code": 422})
    try:
        utils.create_from_dict(api, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
                               namespace=NS)
        raise AssertionError("created twice")
    except utils.FailToCreateError as e:
        assert "configmaps \\\"a\\\" already exists" in str(e), str(e)

    step("patches: merge, strategic, JSON, apply")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [
                                     {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                     {"name": "b", "image": "b:1"}]}}}}
    created = apps.create_namespaced_deployment(NS, dep)
    assert created.status is not None and created.spec.template.spec.containers[0].resources is not None
    # The typed API sends a dict as a strategic merge patch: containers merge by name.
    p = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": "b:2", "env": [{"name": "Y", "value": "2"}]}]}}}})
    cs = {c.name: c for c in p.spec.template.spec.containers}
    assert set(cs) == {"a", "b"} and cs["b"].image == "b:2" and cs["a"].env[0].name == "X", p.spec
    # ... and a list as a JSON patch.
    p = apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert p.spec.replicas == 3
    # The dynamic client chooses: a merge patch replaces lists whole.
    dyn = dynamic.DynamicClient(client.ApiClient())
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    p = deployments.patch(name="web", namespace=NS, content_type="application/merge-patch+json",
                          body={"metadata": {"labels": {"tier": "front"}},
                                "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}}})
    assert dict(p.metadata.labels) == {"app": "web", "tier": "front"}, p.metadata.labels
    assert [c.name for c in p.spec.template.spec.containers] == ["a"], p.spec
    # Server-side apply, with force=True in the query as Python spells it.
    p = deployments.server_side_apply(
        name="web", namespace=NS, field_manager="py", force_conflicts=True,
        body={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}})
    assert p.spec.replicas == 2
    assert any(m.manager == "py" and m.operation == "Apply" for m in p.metadata.managedFields), p.metadata
    typed = apps.read_namespaced_deployment("web", NS)
    assert typed.spec.replicas == 2 and typed.status is not None

    step("create, read and list every built-in kind through its typed API")
    for manifest in MANIFESTS:
        kind = manifest["kind"]
        created = utils.create_from_dict(api, manifest, namespace=NS)[0]
        assert created.metadata.name == manifest["metadata"]["name"], (kind, created)
        k8s_api = typed_api(api, manifest["apiVersion"])
        snake = re.sub("([a-z0-9])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", kind)).lower()
        name = manifest["metadata"]["name"]
        if hasattr(k8s_api, f"read_namespaced_{snake}"):
            got = getattr(k8s_api, f"read_namespaced_{snake}")(name, NS)
            listed = getattr(k8s_api, f"list_namespaced_{snake}")(NS)
        else:
            got = getattr(k8s_api, f"read_{snake}")(name)
            listed = getattr(k8s_api, f"list_{snake}")()
        assert got.metadata.name == name, (kind, got)
        assert name in [i.metadata.name for i in listed.items], (kind, listed)
        print(f"   {kind}: ok", flush=True)

    step("delete_collection by label")
    for i in range(3):
        core.create_namespaced_config_map(NS, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"many-{i}", labels={"batch": "x"})))
    core.delete_collection_namespaced_config_map(NS, label_selector="batch=x")
    left = core.list_namespaced_config_map(NS, label_selector="batch=x")
    assert left.items == [], left

    step("the dynamic client discovers and drives resources")
    names = [d.metadata.name for d in deployments.get(namespace=NS).items]
    assert "web" in names, names
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"}, "data": {"x": "y"}},
               namespace=NS)
    assert cms.get(name="dyn", namespace=NS).data.x == "y"
    cms.delete(name="dyn", namespace=NS)

    print("PASS", flush=True)


POD_SPEC = {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "x"}}

MANIFESTS = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod"}, "spec": POD_SPEC},
    {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
     "spec": {"replicas": 0, "selector": {"app": "x"}, "template": TEMPLATE}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
     "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "secret"}, "stringData": {"a": "b"}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"},
     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "py-pv"},
     "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv"}}},
    {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
     "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}}]}},
    {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "rq"}, "spec": {"hard": {"pods": "100"}}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ep"},
     "subsets": [{"addresses": [{"ip": "10.42.0.9"}], "ports": [{"port": 80}]}]},
    {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "pt"}, "template": TEMPLATE},
    {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"},
     "involvedObject": {"kind": "Pod", "name": "pod", "namespace": NS}, "reason": "Test", "message": "m"},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deploy"},
     "spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
     "spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
     "spec": {"selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"},
     "spec": {"replicas": 0, "serviceName": "svc", "selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "cr"}, "revision": 1},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job"},
     "spec": {"suspend": True, "template": {"spec": dict(POD_SPEC, restartPolicy="Never")}}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
     "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": dict(POD_SPEC, restartPolicy="Never")}}}}},
    {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa1"},
     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "deploy"},
              "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa2"},
     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "deploy"},
              "maxReplicas": 3}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"},
     "spec": {"defaultBackend": {"service": {"name": "svc", "port": {"number": 80}}}}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "py-class"},
     "spec": {"controller": "example.com/ingress"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
     "spec": {"podSelector": {}}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "role"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role"},
     "subjects": [{"kind": "User", "name": "someone", "apiGroup": "rbac.authorization.k8s.io"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "py-cr"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "py-crb"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "py-cr"},
     "subjects": [{"kind": "User", "name": "someone", "apiGroup": "rbac.authorization.k8s.io"}]},
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "py-sc"},
     "provisioner": "example.com/none"},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lease"},
     "spec": {"holderIdentity": "me"}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "slice"},
     "addressType": "IPv4", "endpoints": [{"addresses": ["10.42.0.9"]}], "ports": [{"port": 80}]},
    {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev2"},
     "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "py", "reportingInstance": "py-1",
     "action": "Test", "reason": "Test", "type": "Normal", "regarding": {"kind": "Pod", "name": "pod"}},
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
     "spec": {"minAvailable": 1, "selector": SELECTOR}},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "py-prio"}, "value": 10},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
     "metadata": {"name": "py-vwc"}},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
     "metadata": {"name": "py-mwc"}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "py-node"}},
]

if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        sys.exit(1)
