-- wrk script of benchmarks 2 and 3: POSTs exactly TOTAL jobs to /download as fast as
-- the connections allow, then stops. Job k (0 <= k < TOTAL) downloads
-- string.format(URL_FMT, k) into aggregation "<PREFIX><k % NAGGR>" with limit LIMIT and
-- an HTTP callback to CALLBACK (and aggr_rate RATE when given). Thread t of T posts
-- k = t-1, t-1+T, ...
-- wrk calls request() once on the first thread before the run to inspect the request;
-- that call gets a harmless GET /hb. Once a thread's jobs are all sent, it keeps its
-- connections busy with GET /hb until every POST is answered, then stops itself and
-- creates the file MARKER.<thread>. wrk's main thread sleeps for the whole -d duration
-- regardless, so the caller waits for the T marker files and sends wrk SIGINT, which
-- ends the run at once and prints the results (done()).
--
--   wrk -t2 -c32 -d60s -s bench/post_jobs.lua http://127.0.0.1:PORT -- \
--       TOTAL T URL_FMT NAGGR LIMIT CALLBACK PREFIX MARKER [RATE]
local threads = {}
local nthreads = 0

function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end

function init(args)
    total = tonumber(args[1])
    nthr = tonumber(args[2])
    url_fmt = args[3]
    naggr = tonumber(args[4])
    limit = tonumber(args[5])
    callback = args[6]
    prefix = args[7] or "a"
    marker = args[8]
    rate = (args[9] and args[9] ~= "") and (',"aggr_rate":' .. args[9]) or ""
    finished = false
    quota = 0
    for k = tid - 1, total - 1, nthr do quota = quota + 1 end
    issued = (tid == 1) and -1 or 0 -- the inspection call happens on thread 1 only
    created = 0
    failed = 0
end

local hdrs = { ["Content-Type"] = "application/json" }
local filler = wrk.format("GET", "/hb")

function request()
    local i = issued
    issued = issued + 1
    if i < 0 or i >= quota then return filler end
    local k = tid - 1 + nthr * i
    local body = string.format('{"url":"%s","aggr_id":"%s%d","aggr_limit":%d,"callback_url":"%s"%s}',
        string.format(url_fmt, k), prefix, k % naggr, limit, callback, rate)
    return wrk.format("POST", "/download", hdrs, body)
end

function response(status, headers, body)
    if status == 201 then
        created = created + 1
    elseif status ~= 200 then
        failed = failed + 1
    end
    if created + failed >= quota and not finished then
        finished = true
        if marker then
            local f = io.open(marker .. "." .. tid, "w")
            if f then f:close() end
        end
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local c, f = 0, 0
    for _, t in ipairs(threads) do
        c = c + (t:get("created") or 0)
        f = f + (t:get("failed") or 0)
    end
    local er = summary.errors
    io.write(string.format("RESULT created %d\n", c))
    io.write(string.format("RESULT failed %d\n", f))
    io.write(string.format("RESULT socket_errors %d\n",
        er.connect + er.read + er.write + er.timeout))
    io.write(string.format("RESULT duration_us %d\n", summary.duration))
end
