"""Driving Debian's `wrk` and reading what it prints: req/s, the latency percentiles, errors."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

THREADS = 2
# wrk's default timeout (2 s) would drop the slowest requests from the percentiles: the hot
# feed took 6.6 s at p99 when issue #13 was filed. A request slower than this counts as an error.
TIMEOUT = "30s"
USER_AGENT = "cheyou-bench"  # Flask-Login's session identifier hashes it: the cookies are made with it


@dataclass
class Result:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts statuses >= 400 ("Non-2xx or 3xx responses", despite its words)
    socket_errors: int  # connect, read, write and timeout errors together
    output: str

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def refusals(self) -> list[str]:
        """What the write scripts print about the first refused request of each thread."""
        return [line for line in self.output.splitlines() if line.startswith("first refusal:")]

    @property
    def mostly_errors(self) -> bool:
        return self.requests == 0 or self.errors * 2 > self.requests


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value).groups()
    return float(number) * _UNITS_MS[unit]


def parse(output: str) -> Result:
    """The figures of one `wrk --latency` run's output."""
    def percentile(p):
        found = re.search(rf"^\s*{p}%\s+(\S+)", output, re.M)
        return _ms(found.group(1)) if found else float("nan")

    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Result(requests=int(requests.group(1)) if requests else 0, rps=float(rps.group(1)) if rps else 0.0,
                  p50_ms=percentile(50), p99_ms=percentile(99), non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
                  socket_errors=sum(map(int, sockets.groups())) if sockets else 0, output=output)


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, duration: float, connections: int, headers: dict | None = None, script: Path | None = None) -> Result:
    """`wrk -t2 -cN -dDs --latency` on URL, with HEADERS on every request (or SCRIPT's requests)."""
    command = ["wrk", f"-t{min(THREADS, connections)}", f"-c{connections}", f"-d{duration:g}s", "--latency",
               "--timeout", TIMEOUT, "-H", f"User-Agent: {USER_AGENT}"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run(command + [url], capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}) on {url}:\n{done.stdout}\n{done.stderr}")
    return parse(done.stdout)


# A write's requests, one per call of `request`: who sends it (a session cookie and its CSRF
# token, rotated at random, or each once in turn), what it targets and a fresh form nonce.
LUA = r"""-- Made by bench/writes.py for one wrk run: %(kind)s.
local kind = "%(kind)s"
local cookies = { %(cookies)s }
local tokens = { %(tokens)s }
local targets = { %(targets)s }
local each_once = %(each_once)s
local threads = %(threads)d
local comment = "%(comment)s"
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local started = 0
local turn = 0

function setup(thread)
  started = started + 1
  thread:set("number", started)
end

function init(args)
  math.randomseed(os.time() * 1000 + number * 7919)
  turn = number - 1  -- thread k takes members k, k + threads, k + 2 × threads…
end

local function nonce()
  local chars = {}
  for i = 1, 24 do
    local k = math.random(#alphabet)
    chars[i] = alphabet:sub(k, k)
  end
  return table.concat(chars)
end

request = function()
  local who
  if each_once then
    who = turn %% #cookies + 1
    turn = turn + threads
  else
    who = math.random(#cookies)
  end
  local target = targets[math.random(#targets)]
  local path, body
  if kind == "like" then
    path, body = "/stories/" .. target .. "/like", ""
  elseif kind == "comment" then
    path, body = "/stories/" .. target .. "/comments", "body=" .. comment .. math.random(1000000000) .. "&nonce=" .. nonce()
  elseif kind == "signup" then
    path, body = "/events/" .. target .. "/signup", "companions=0"
  else
    path, body = "/rewards/" .. target .. "/redeem", "nonce=" .. nonce()
  end
  return wrk.format("POST", path, {
    ["Cookie"] = cookies[who], ["X-CSRFToken"] = tokens[who], ["HX-Request"] = "true",
    ["Content-Type"] = "application/x-www-form-urlencoded", ["User-Agent"] = "%(user_agent)s",
  }, body)
end

-- The first refusal, printed once per thread: why the requests fail, when they do.
local told = false
response = function(status, headers, body)
  if status >= 400 and not told then
    told = true
    print("first refusal: " .. status .. " " .. body:gsub("%%s+", " "):sub(1, 600))
  end
end
"""


def _lua_strings(values) -> str:
    return ", ".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)


def write_script(path: Path, kind: str, members: list[tuple[str, str]], targets: list[int], each_once: bool,
                 comment: str = "") -> Path:
    """A wrk Lua script for KIND ("like", "comment", "signup", "redeem") sent by MEMBERS
    ((cookie header, CSRF token) pairs) at TARGETS (story, event or reward ids)."""
    path.write_text(LUA % {
        "kind": kind, "cookies": _lua_strings(c for c, _ in members), "tokens": _lua_strings(t for _, t in members),
        "targets": ", ".join(map(str, targets)), "each_once": "true" if each_once else "false", "threads": THREADS,
        "comment": comment, "user_agent": USER_AGENT,
    })
    return path
