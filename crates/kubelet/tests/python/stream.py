"""The official Python client's streaming (`kubernetes.stream`) against pod `web` in
`default`: exec with separate stdout/stderr, an exit code, and a port-forward to 8080.
It speaks WebSocket v4.channel.k8s.io, which the runtime's stream server answers."""

import sys

from kubernetes import client, config
from kubernetes.stream import portforward, stream


def main():
    config.load_kube_config()
    v1 = client.CoreV1Api()
    out = stream(v1.connect_get_namespaced_pod_exec, "web", "default", container="app",
                 command=["sh", "-c", "echo py-out; echo py-err >&2"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    # stdout and stderr are channels of their own: their lines may arrive in either order.
    assert sorted(out.splitlines()) == ["py-err", "py-out"], repr(out)
    resp = stream(v1.connect_get_namespaced_pod_exec, "web", "default", container="app",
                  command=["sh", "-c", "exit 3"], stderr=True, stdin=False, stdout=True,
                  tty=False, _preload_content=False)
    resp.run_forever(timeout=20)
    assert resp.returncode == 3, resp.returncode
    pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.") and data.endswith(b"hello-from-pod\n"), data
    print("PASS")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        sys.exit(1)
