-- Small queries over result rows (the records of metrics.jsonl): filter, group, per-task
-- values, means. The study's analyses are written with these (pairing and differences by task:
-- mtt.stats.align, mtt.stats.delta).
--
--   local R = mtt.recipe.rows
--   local icl = R.where(rows, {kind = 'icl', metric = 'loss', k = 2})
--   local by_task = R.by(icl, 'task')            -- task -> mean value over seeds
local M = {}

-- Rows whose fields equal every field of `match` (a function value is a predicate).
function M.where(rows, match)
  local out = {}
  for _, r in ipairs(rows) do
    local ok = true
    for k, v in pairs(match) do
      if type(v) == 'function' then
        if not v(r[k]) then ok = false break end
      elseif r[k] ~= v then
        ok = false
        break
      end
    end
    if ok then out[#out + 1] = r end
  end
  return out
end

-- key -> mean of `field` (default 'value') over the rows sharing that key; keys sorted too.
function M.by(rows, key, field)
  field = field or 'value'
  local sum, count, keys = {}, {}, {}
  for _, r in ipairs(rows) do
    local k = r[key]
    if k ~= nil and type(r[field]) == 'number' then
      if not sum[k] then
        sum[k], count[k] = 0, 0
        keys[#keys + 1] = k
      end
      sum[k], count[k] = sum[k] + r[field], count[k] + 1
    end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return tostring(a) < tostring(b)
  end)
  local mean = {}
  for _, k in ipairs(keys) do mean[k] = sum[k] / count[k] end
  return mean, keys
end

-- Distinct values of `field`, sorted.
function M.values(rows, field)
  local seen, list = {}, {}
  for _, r in ipairs(rows) do
    local v = r[field]
    if v ~= nil and not seen[v] then
      seen[v] = true
      list[#list + 1] = v
    end
  end
  table.sort(list, function(a, b)
    if type(a) == type(b) then return a < b end
    return tostring(a) < tostring(b)
  end)
  return list
end

-- The mean of a list; nan for an empty one (mtt.stats.mean refuses it).
function M.mean(xs)
  if #xs == 0 then return 0 / 0 end
  return require('mtt.stats').mean(xs)
end

-- The last record of rows that has `field` (e.g. the final per-task losses of training).
function M.last_with(rows, field)
  for i = #rows, 1, -1 do if rows[i][field] ~= nil then return rows[i] end end
  return nil
end

return M
