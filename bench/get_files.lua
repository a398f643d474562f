-- wrk script of benchmark 2's ceiling: GET random files out of N, named like the
-- end-to-end jobs' URLs (string.format(PATH_FMT, k), 0 <= k < N).
--
--   wrk -t2 -c64 -d5s -s bench/get_files.lua http://127.0.0.1:PORT -- N PATH_FMT
function init(args)
    n = tonumber(args[1])
    path_fmt = args[2]
    math.randomseed(os.time() + (tid or 0))
end

function request()
    return wrk.format("GET", string.format(path_fmt, math.random(0, n - 1)))
end
