"""The ceiling: a FastAPI endpoint returning constant JSON, served as our server is.

Same uvicorn options as ``amplify-auth-server serve`` (one process, no access
log, no server header, uvloop and httptools when installed), so that the
ratio measures our work, not a configuration difference.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.post("/constant")
async def constant() -> dict[str, object]:
    return {"valid": True, "scopes": ["read"], "token_id": "tok_x", "name": "n", "reason": None}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        server_header=False,
    )
