"""The rendezvous of a multi-node run: what every node must be told so that torchrun's nodes find
each other.

LLaMA-Factory 0.9.5's launcher passes ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` to torchrun, with the defaults 1, 0, 127.0.0.1 and a free port of its own
choosing. Those defaults are right for one node and wrong for several: each node would wait on
itself at 127.0.0.1 and a port the others never hear of, or two nodes would both claim rank 0,
and the run hangs until the process-group timeout (``ddp_timeout``: hours in our recipes). So
with ``NNODES`` above 1 every one of them must be set, the rank must lie in 0 … NNODES-1, and the
address must be one the other nodes can reach.
"""

from __future__ import annotations

import re

from .report import Report

_LOOPBACK = re.compile(r"^(localhost|::1|\[::1\]|127\.\d{1,3}\.\d{1,3}\.\d{1,3})$", re.IGNORECASE)
EXAMPLE = "NNODES=2 NODE_RANK=<0 on the node at MASTER_ADDR, 1 on the other> MASTER_ADDR=<node 0's address> MASTER_PORT=29500"


def _whole(env: dict, key: str) -> int | None | str:
    """The variable as a whole number, None when unset or empty, or the raw text when it is not one."""
    raw = (env.get(key) or "").strip()
    if not raw:
        return None
    return int(raw) if raw.isdigit() else raw


def rendezvous_problems(env: dict) -> list[str]:
    """One line per problem with NNODES / NODE_RANK / MASTER_ADDR / MASTER_PORT (none for one node
    left to LLaMA-Factory's defaults)."""
    nnodes = _whole(env, "NNODES")
    rank = _whole(env, "NODE_RANK")
    if isinstance(nnodes, str) or nnodes == 0:  # 0: LLaMA-Factory would pass it on to torchrun
        return [f"NNODES={env.get('NNODES')}: not a number of nodes (1 or more): set NNODES=N on every node"]
    nnodes = nnodes or 1
    problems = []
    if isinstance(rank, str):
        problems.append(
            f"NODE_RANK={env.get('NODE_RANK')}: not a node number: set NODE_RANK=0 … {nnodes - 1}, "
            "a different one on each node"
        )
    elif rank is not None and rank >= nnodes:
        problems.append(
            f"NODE_RANK={rank} with NNODES={nnodes}: node ranks run from 0 to {nnodes - 1}, so torchrun "
            f"would wait for a node that never comes: give each node its own NODE_RANK below {nnodes} "
            "(0 on the node at MASTER_ADDR)"
        )
    if nnodes == 1:
        return problems
    if rank is None:
        problems.append(
            f"NNODES={nnodes} without NODE_RANK: every node would claim rank 0 and the run would hang: "
            f"set NODE_RANK=0 on the node at MASTER_ADDR and 1 … {nnodes - 1} on the others"
        )
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not (env.get(k) or "").strip()]
    if missing:
        problems.append(
            f"NNODES={nnodes} without {' and '.join(missing)}: each node would fall back to 127.0.0.1 "
            "and a port of its own and wait for the others until the timeout: set the same MASTER_ADDR "
            f"(node 0's address) and MASTER_PORT on every node, e.g. {EXAMPLE}"
        )
        return problems
    addr, port = env["MASTER_ADDR"].strip(), env["MASTER_PORT"].strip()
    if _LOOPBACK.match(addr):
        problems.append(
            f"MASTER_ADDR={addr} with NNODES={nnodes}: a loopback address that only its own node can reach: "
            "set MASTER_ADDR to node 0's address on the network the nodes share"
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        problems.append(f"MASTER_PORT={port}: not a port number (1-65535): e.g. MASTER_PORT=29500")
    return problems


def check_rendezvous(r: Report, env: dict) -> None:
    """The preflight's check (train and predict: both go through LLaMA-Factory's torchrun launch)."""
    if not any((env.get(k) or "").strip() for k in ("NNODES", "NODE_RANK")):
        return
    r.checked.append("nodes")
    for line in rendezvous_problems(env):
        r.fail(line)
