-- Command-line settings of a recipe: `mtt run recipe.lua --quick --set steps=200 --set base=runs/x`.
--
--   local cfg = mtt.recipe.args('instruct', defaults, {quick = {...}, presets...}, arg)
--
-- Every setting has a default in `defaults`; `--set key=value` is typed as the default (numbers,
-- booleans, strings, and comma-separated lists for list defaults) and an unknown key is an error
-- that lists the accepted ones, so a misspelt setting never runs silently with its default.
-- A preset (`--quick`, or any name in `presets`) overrides several settings at once; --set
-- wins over presets wherever it stands on the line. `--help` (or -h) prints every setting with
-- its default and each preset's value where it differs (M.help), then exits.
local M = {}

local function fail(recipe, msg) error(recipe .. ': ' .. msg, 0) end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function convert(recipe, key, default, text)
  local kind = type(default)
  if kind == 'number' then
    return tonumber(text) or fail(recipe, string.format("setting '%s' needs a number, got '%s'", key, text))
  elseif kind == 'boolean' then
    if text == 'true' or text == '1' then return true end
    if text == 'false' or text == '0' then return false end
    fail(recipe, string.format("setting '%s' needs true or false, got '%s'", key, text))
  elseif kind == 'table' then
    local list = {}
    for item in text:gmatch('[^,]+') do
      local first = default[1]
      list[#list + 1] = type(first) == 'number' and (tonumber(item) or
        fail(recipe, string.format("setting '%s' needs numbers, got '%s'", key, item))) or item
    end
    return list
  end
  return text
end

-- A setting's value as --set takes it: lists comma-separated.
local function show(v)
  if type(v) == 'table' then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return table.concat(parts, ',')
  end
  return tostring(v)
end

-- The text of --help: usage, presets, and a row a setting (name, default, preset values).
function M.help(recipe, defaults, presets)
  presets = presets or {}
  local names = sorted_keys(presets)
  local flags = {}
  for i, p in ipairs(names) do flags[i] = '[--' .. p .. '] ' end
  local lines = {
    string.format('usage: mtt run <%s recipe> %s[--set key=value ...] [--help]', recipe, table.concat(flags)),
    string.format('settings of %s: default%s', recipe,
      #names > 0 and ('; where a preset differs, --' .. table.concat(names, ', --') .. ' sets') or ''),
  }
  local width, vwidth = 0, 0
  for k, v in pairs(defaults) do width, vwidth = math.max(width, #k), math.max(vwidth, math.min(#show(v), 24)) end
  for _, k in ipairs(sorted_keys(defaults)) do
    local row = string.format('  %-' .. width .. 's  %-' .. vwidth .. 's', k, show(defaults[k]))
    for _, p in ipairs(names) do
      local v = presets[p][k]
      if v ~= nil and show(v) ~= show(defaults[k]) then row = row .. string.format('  [--%s: %s]', p, show(v)) end
    end
    lines[#lines + 1] = (row:gsub('%s+$', ''))
  end
  lines[#lines + 1] = 'lists are comma-separated: --set key=1,2,3'
  return table.concat(lines, '\n') .. '\n'
end

-- Returns cfg (a fresh table: defaults, then presets, then --set values) and the names of the
-- presets that were applied.
function M.parse(recipe, defaults, presets, argv)
  presets = presets or {}
  argv = argv or {}
  local cfg, applied, sets = {}, {}, {}
  for k, v in pairs(defaults) do cfg[k] = v end
  local i = 1
  while argv[i] do
    local a = argv[i]
    local name = a:match('^%-%-([%w_%-]+)$')
    if a == '--help' or a == '-h' then
      io.write(M.help(recipe, defaults, presets))
      os.exit(0)
    elseif a == '--set' or a:match('^%-%-set=') then
      local kv = a == '--set' and argv[i + 1] or a:sub(7)
      i = i + (a == '--set' and 2 or 1)
      local k, v = tostring(kv):match('^([%w_]+)=(.*)$')
      if not k then fail(recipe, '--set needs key=value, got ' .. tostring(kv)) end
      sets[#sets + 1] = { k, v }
    elseif name and presets[name] then
      for k, v in pairs(presets[name]) do
        if defaults[k] == nil then fail(recipe, string.format("preset '%s' sets unknown key '%s'", name, k)) end
        cfg[k] = v
      end
      applied[#applied + 1] = name
      i = i + 1
    else
      local accepted = { '--set key=value', '--help' }
      for _, p in ipairs(sorted_keys(presets)) do accepted[#accepted + 1] = '--' .. p end
      fail(recipe, 'unknown argument ' .. a .. ' (accepted: ' .. table.concat(accepted, ', ') .. ')')
    end
  end
  for _, kv in ipairs(sets) do
    local k, v = kv[1], kv[2]
    if defaults[k] == nil then
      fail(recipe, string.format("unknown setting '%s' (accepted: %s)", k, table.concat(sorted_keys(defaults), ', ')))
    end
    cfg[k] = convert(recipe, k, defaults[k], v)
  end
  return cfg, applied
end

return M
