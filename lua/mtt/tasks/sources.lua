-- mtt.tasks.sources: what mtt.tasks.load accepts, resolved into an ordered list of task files
-- (path, bytes or a Lua spec), each checked against max_bytes before it is read whole.
--
-- A spec is: a .json file (Super-NaturalInstructions), a .lua task spec, a folder (its *.json
-- and *.lua files, sorted by name, not recursive), a glob in the last path component
-- ('dir/task1*.json': *, ? and [...] as in the shell; matches sorted by name), a split list
-- (.txt: one task name a line, blank lines and '#' comments skipped), an archive (.zip, .tar,
-- .tar.gz/.tgz, .tar.zst/.tzst, .tar.xz/.txz, .tar.bz2: its *.json members in member order), or
-- a Lua array of these (Task objects pass through). A split list's names are looked up as
-- <name>.json or <name>.lua in opts.tasks_dir (a folder or an archive), or by default in the
-- folder ../../tasks relative to the list (NIv2's splits/default/train_tasks.txt layout), then
-- next to the list.
local mio = require 'mtt.io'
local U = require 'mtt.util'
local task_mod = require 'mtt.tasks.task'

local M = {}
local PREFIX = 'mtt.tasks.load: '

local function fail(msg) U.raise(PREFIX .. msg) end

local function dirname(p) return p:match('^(.*)/[^/]*$') or '.' end
local function basename(p) return p:match('([^/]*)$') end
local function join(d, n) return d == '.' and n or (d:sub(-1) == '/' and d .. n or d .. '/' .. n) end
M.basename = basename

local ARCHIVE = { '%.zip$', '%.tar$', '%.tar%.gz$', '%.tgz$', '%.tar%.zst$', '%.tzst$', '%.tar%.xz$', '%.txz$',
  '%.tar%.bz2$', '%.tbz2$' }
local function is_archive(p)
  local l = p:lower()
  for _, pat in ipairs(ARCHIVE) do if l:find(pat) then return true end end
  return false
end

local function task_name(file) return (basename(file):gsub('%.[^.]*$', '')) end

-- A file's bytes, refused before reading when over max_bytes.
local function read_file(path, max_bytes)
  local st, err = mio.stat(path)
  if not st then fail(path .. ': ' .. tostring(err)) end
  if st.size > max_bytes then
    fail(string.format('%s: %d bytes, over max_bytes = %d (not read)', path, st.size, max_bytes))
  end
  local f, e = io.open(path, 'rb')
  if not f then fail(tostring(e)) end
  local s = f:read('*a')
  f:close()
  if #s > max_bytes then fail(string.format('%s: over max_bytes = %d', path, max_bytes)) end
  return s
end

-- The *.json members of an archive, in member order: {{name =, path =, bytes =}, ...}.
local function archive_members(path, max_bytes)
  if not mio.stat(path) then fail(path .. ': no such file') end
  local ok, r = pcall(mio.open_archive, path)
  if not ok then fail(path .. ': ' .. tostring(r)) end
  local out = {}
  local ok2, err = pcall(function()
    while true do
      local member, size = r:next()
      if not member then break end
      local base = basename(member)
      if base:lower():find('%.json$') and base:sub(1, 1) ~= '.' then
        local where = path .. ':' .. member
        if size and size > max_bytes then
          error(string.format('%s: %d bytes, over max_bytes = %d (not read)', where, size, max_bytes), 0)
        end
        local parts, got = {}, 0
        while true do
          local s = r:read()
          if not s then break end
          got = got + #s
          if got > max_bytes then error(string.format('%s: over max_bytes = %d (reading stopped)', where, max_bytes), 0) end
          parts[#parts + 1] = s
        end
        out[#out + 1] = { name = task_name(member), path = where, bytes = table.concat(parts) }
      end
    end
  end)
  r:close()
  if not ok2 then
    err = tostring(err):gsub('^' .. PREFIX:gsub('%p', '%%%0'), '')
    fail(err:find(path, 1, true) and err or (path .. ': ' .. err))
  end
  return out
end

-- A shell glob (one path component) as an anchored Lua pattern.
local function glob_pattern(g)
  local out, i, n = { '^' }, 1, #g
  while i <= n do
    local c = g:sub(i, i)
    local close = c == '[' and g:find(']', i + 2, true)
    if c == '*' then out[#out + 1] = '.*'
    elseif c == '?' then out[#out + 1] = '.'
    elseif close then
      local body = g:sub(i + 1, close - 1)
      local neg = body:sub(1, 1) == '!' or body:sub(1, 1) == '^'
      if neg then body = body:sub(2) end
      body = body:gsub('[%%%]%^]', '%%%0')
      out[#out + 1] = '[' .. (neg and '^' or '') .. body .. ']'
      i = close
    else out[#out + 1] = c:find('%W') and ('%' .. c) or c end
    i = i + 1
  end
  out[#out + 1] = '$'
  return table.concat(out)
end

local resolve

local function add_file(list, path, o)
  local l = path:lower()
  if l:find('%.json$') then
    list[#list + 1] = { name = task_name(path), path = path, bytes = read_file(path, o.max_bytes) }
  elseif l:find('%.lua$') then
    read_file(path, o.max_bytes) -- the size check
    list[#list + 1] = { name = task_name(path), path = path, lua = true }
  elseif l:find('%.txt$') then
    M.split_list(list, path, o)
  elseif is_archive(path) then
    for _, m in ipairs(archive_members(path, o.max_bytes)) do list[#list + 1] = m end
  else
    fail(path .. ': not a task file (.json, .lua), split list (.txt), archive or folder')
  end
end

-- Where a split list's names are found: a map name -> entry maker.
local function lookup_in(dir_or_archive, o)
  local st = mio.stat(dir_or_archive)
  if not st then return nil end
  if st.is_dir then
    return function(name)
      for _, ext in ipairs({ '.json', '.lua' }) do
        local p = join(dir_or_archive, name .. ext)
        if mio.stat(p) then return p end
      end
    end
  end
  if is_archive(dir_or_archive) then
    local by = {}
    for _, m in ipairs(archive_members(dir_or_archive, o.max_bytes)) do by[m.name] = by[m.name] or m end
    return function(name) return by[name] end
  end
  fail(dir_or_archive .. ': tasks_dir must be a folder or an archive')
end

function M.split_list(list, path, o)
  local text = read_file(path, o.max_bytes)
  local places = {}
  if o.tasks_dir then
    local f = lookup_in(o.tasks_dir, o)
    if not f then fail('tasks_dir ' .. o.tasks_dir .. ': no such folder or archive') end
    places[1] = { f, o.tasks_dir }
  else
    local d = dirname(path)
    for _, cand in ipairs({ join(d, '../../tasks'), d }) do
      local f = lookup_in(cand, o)
      if f then places[#places + 1] = { f, cand } end
    end
  end
  local lineno = 0
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    lineno = lineno + 1
    local name = line:gsub('#.*$', ''):match('^%s*(.-)%s*$')
    if name ~= '' then
      local found
      for _, pl in ipairs(places) do
        found = pl[1](name)
        if found then break end
      end
      if not found then
        local where = {}
        for _, pl in ipairs(places) do where[#where + 1] = pl[2] end
        fail(string.format("%s:%d: task '%s' not found (looked for %s.json / .lua in %s)", path, lineno, name, name,
          #where > 0 and table.concat(where, ', ') or '(no such folders)'))
      end
      if type(found) == 'table' then list[#list + 1] = found else add_file(list, found, o) end
    end
  end
end

function resolve(list, spec, o)
  if task_mod.is_task(spec) then
    list[#list + 1] = { task = spec, name = spec.name, path = spec.path or ('(task ' .. spec.name .. ')') }
  elseif type(spec) == 'table' then
    if #spec == 0 and next(spec) ~= nil then fail('a table spec must be an array of paths or tasks') end
    for _, s in ipairs(spec) do resolve(list, s, o) end
  elseif type(spec) ~= 'string' or spec == '' then
    fail('expected a path, a glob, or an array of them, got ' .. type(spec))
  else
    local base = basename(spec)
    if base:find('[%*%?%[]') then
      local d = dirname(spec)
      local st = mio.stat(d)
      if not st or not st.is_dir then fail(spec .. ': folder ' .. d .. ' not found') end
      local pat, n = glob_pattern(base), 0
      for _, entry in ipairs(mio.listdir(d)) do
        if entry:find(pat) and entry:sub(1, 1) ~= '.' then
          n = n + 1
          resolve(list, join(d, entry), o)
        end
      end
      if n == 0 then fail(spec .. ': no file matches') end
      return
    end
    local st = mio.stat(spec)
    if not st then fail(spec .. ': no such file or folder') end
    if st.is_dir then
      for _, entry in ipairs(mio.listdir(spec)) do
        local l = entry:lower()
        if entry:sub(1, 1) ~= '.' and (l:find('%.json$') or l:find('%.lua$')) then add_file(list, join(spec, entry), o) end
      end
    else
      add_file(list, spec, o)
    end
  end
end

-- M.collect(spec, o) -> {{name =, path =, bytes = | lua = true | task =}, ...}
function M.collect(spec, o)
  local list = {}
  resolve(list, spec, o)
  return list
end

return M
