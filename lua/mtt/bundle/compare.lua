-- mtt.bundle.compare: are two runs' metrics the same? metrics.jsonl files are compared record by
-- record, every field but the timing ones (which measure the machine's load, not the run):
-- M.TIMING lists them. Numbers must be equal as floats (mtt writes them with 17 digits).
local M = {}

M.TIMING = { elapsed = true, elapsed_run = true, tokens_per_s = true, samples_per_s = true, time = true,
  wall_time = true, eval_time = true }

local function records(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local text = f:read('*a')
  f:close()
  local json = require('cjson').new()
  local out = {}
  for line in text:gmatch('([^\n]*)\n?') do
    if line ~= '' then
      local ok, r = pcall(json.decode, line)
      out[#out + 1] = ok and r or { __unparsed = line }
    end
  end
  return out
end

local function show(v)
  if type(v) == 'number' then return string.format('%.17g', v) end
  if type(v) == 'table' then return require('mtt.train.metrics').encode(v) end
  return tostring(v)
end

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Differences between two metrics.jsonl files, as lines of text (an empty list when the runs
-- agree); at most `max` lines (default 20).
function M.metrics(expected_path, got_path, max)
  max = max or 20
  local a, b = records(expected_path), records(got_path)
  if not a then return { 'missing ' .. expected_path } end
  if not b then return { 'missing ' .. got_path .. ' (the rerun wrote no metrics there)' } end
  local diffs = {}
  local function add(s) if #diffs < max then diffs[#diffs + 1] = s end end
  if #a ~= #b then add(string.format('%d records packed, %d in the rerun', #a, #b)) end
  for i = 1, math.min(#a, #b) do
    local ra, rb = a[i], b[i]
    local keys = {}
    for k in pairs(ra) do keys[k] = true end
    for k in pairs(rb) do keys[k] = true end
    local sorted = {}
    for k in pairs(keys) do if not M.TIMING[k] then sorted[#sorted + 1] = k end end
    table.sort(sorted)
    for _, k in ipairs(sorted) do
      if not same(ra[k], rb[k]) then
        add(string.format('record %d (step %s): %s = %s packed, %s rerun', i, show(ra.step or rb.step), k,
          show(ra[k]), show(rb[k])))
      end
    end
  end
  return diffs
end

return M
