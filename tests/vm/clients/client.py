"""A plain Python TCP client: socket.socket() (which adds SOCK_CLOEXEC). Same protocol and
output as client.c. Usage: client.py ADDRESS PORT SIZE"""

import json
import socket
import sys

SOL_MPTCP, MPTCP_INFO = 284, 1

address, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with socket.socket() as conn:
    conn.connect((address, port))
    protocol = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    try:
        conn.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)
        info_errno = 0
    except OSError as error:
        info_errno = error.errno or -1
    conn.sendall((bytes(range(251)) * (size // 251 + 1))[:size])
    digest = b""
    while len(digest) < 64:
        digest += conn.recv(64 - len(digest))
    print(
        json.dumps(
            {"protocol": protocol, "mptcp_info_errno": info_errno, "digest": digest.decode()}
        ),
        flush=True,
    )
    sys.stdin.read()
