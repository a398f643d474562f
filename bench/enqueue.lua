-- wrk script of benchmark 1 (API enqueue): every request is a POST /download of a new
-- job; jobs are spread round-robin over NAGGR aggregations ("a0".."a<NAGGR-1>").
-- Counts requests issued, 201 answers and everything else per thread; done() prints
-- machine-readable "RESULT <key> <value>" lines (bench/run.sh parses them) including
-- p50/p90/p99 and "unanswered": requests still in flight when wrk stopped (the API may
-- still have enqueued them). wrk calls request() once on thread 1 before the run just
-- to inspect it; that call is not counted. With KEYS "idem" every request carries its
-- own Idempotency-Key (36 characters from RUN, thread and n: a new job each time, plus its record) and
-- answers with Idempotent-Replayed are counted ("replayed": 0 expected).
--
--   wrk -t2 -c64 -d10s --latency -s bench/enqueue.lua http://127.0.0.1:PORT -- [NAGGR] [LIMIT] [KEYS] [RUN]
local threads = {}
local nthreads = 0

function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end

function init(args)
    naggr = tonumber(args[1]) or 100
    limit = tonumber(args[2]) or 5
    idem = args[3] == "idem"
    run = tonumber(args[4]) or 0
    seq = 0
    issued = (tid == 1) and -1 or 0
    created = 0
    non201 = 0
    replayed = 0
end

local fmt = '{"url":"http://127.0.0.1:1/x/%d/%d","aggr_id":"a%d","aggr_limit":%d,' ..
            '"callback_url":"http://127.0.0.1:1/cb"}'
local hdrs = { ["Content-Type"] = "application/json" }

function request()
    seq = seq + 1
    issued = issued + 1
    local body = string.format(fmt, tid, seq, seq % naggr, limit)
    if idem then -- as long as a UUID
        hdrs["Idempotency-Key"] = string.format("%08x-%04x-4000-8000-%012x", run, tid, seq)
    end
    return wrk.format("POST", "/download", hdrs, body)
end

function response(status, headers, body)
    if status == 201 then
        created = created + 1
        if headers["Idempotent-Replayed"] then replayed = replayed + 1 end
    else
        non201 = non201 + 1
    end
end

function done(summary, latency, requests)
    local c, e, i, r = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        c = c + (t:get("created") or 0)
        r = r + (t:get("replayed") or 0)
        e = e + (t:get("non201") or 0)
        i = i + (t:get("issued") or 0)
    end
    local er = summary.errors
    io.write(string.format("RESULT requests %d\n", summary.requests))
    io.write(string.format("RESULT duration_us %d\n", summary.duration))
    io.write(string.format("RESULT created %d\n", c))
    io.write(string.format("RESULT non201 %d\n", e))
    io.write(string.format("RESULT replayed %d\n", r))
    io.write(string.format("RESULT unanswered %d\n", i - c - e))
    io.write(string.format("RESULT socket_errors %d\n",
        er.connect + er.read + er.write + er.timeout))
    io.write(string.format("RESULT p50_us %d\n", latency:percentile(50)))
    io.write(string.format("RESULT p90_us %d\n", latency:percentile(90)))
    io.write(string.format("RESULT p99_us %d\n", latency:percentile(99)))
    io.write(string.format("RESULT max_us %d\n", latency.max))
end
