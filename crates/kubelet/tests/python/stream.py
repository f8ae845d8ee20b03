"""The official Python client's streaming (`kubernetes.stream`) against pod `web` in
`default`: exec with separate stdout/stderr, an exit code, and a port-forward to 8080.
It speaks WebSocket v4.channel.k8s.io, which the runtime's stream server answers.
Then `pods/log` over WebSocket, as the conformance suite reads it, with websocket-client
(the library the official client is built on): binary.k8s.io and base64.binary.k8s.io."""

import base64
import ssl
import sys

import websocket

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
    logs_over_websocket()
    print("PASS")


def logs_over_websocket():
    c = client.Configuration.get_default_copy()
    url = c.host.replace("https://", "wss://") + "/api/v1/namespaces/default/pods/talk/log"
    sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": c.ssl_ca_cert}
    if c.cert_file:
        sslopt.update(certfile=c.cert_file, keyfile=c.key_file)
    header = [f"Authorization: {v}" for v in [c.api_key.get("authorization")] if v]
    want = client.CoreV1Api().read_namespaced_pod_log("talk", "default").encode()
    assert want, "the talk pod has logged nothing yet"
    for protocol, decode in [("binary.k8s.io", bytes),
                             ("base64.binary.k8s.io", base64.b64decode)]:
        ws = websocket.create_connection(url, header=header, sslopt=sslopt,
                                         subprotocols=[protocol], timeout=20)
        assert ws.getsubprotocol() == protocol, ws.getsubprotocol()
        got = b""
        while True:
            opcode, data = ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            got += decode(data)
        assert got == want, (protocol, got, want)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        sys.exit(1)
