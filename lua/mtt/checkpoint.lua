-- mtt.checkpoint: a training checkpoint is one safetensors file: the tensors (model weights under
-- their Hugging Face names, optimizer state under names the trainer picks) and, in __metadata__,
-- the state (step, generator states, data cursor, optimizer hyper-parameters...) as JSON.
--
--   mtt.checkpoint.save('runs/x/ckpt/step-100.safetensors', {tensors = sd, state = {step = 100}})
--   local ck = mtt.checkpoint.load(mtt.checkpoint.latest('runs/x/ckpt'))  -- ck.tensors, ck.state
--
-- Saving is atomic: the file is written under a temporary name in the same folder, synced to
-- disk, renamed, and the folder synced; a crash at any moment leaves either the old files or
-- the complete new one, never a partial file under a checkpoint's name. Tensors found inside
-- the state (e.g. opt:state_dict()'s buffers) are stored too, as "state.<path>", and come back
-- in place. The JSON is exact: numbers keep all their bits (%.17g), keys are sorted, so the
-- same state always gives the same bytes.
local io_ = require 'mtt.io'
local U = require 'mtt.util'
local tensor = require 'mtt.tensor'
local options = require 'mtt.options'

local raise, is_tensor = U.raise, tensor.is_tensor

local M = {}
M.version = '1'

-- ---- state <-> JSON ----

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function encode(v, path, out, tensors, depth)
  local t = type(v)
  if t == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then
      raise(string.format('mtt.checkpoint.save: %s is %s, which JSON cannot hold', path, tostring(v)))
    end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 and not (v == 0 and 1 / v < 0) then
      out[#out + 1] = string.format('%d', v)
    else
      out[#out + 1] = string.format('%.17g', v)
    end
  elseif t == 'string' then
    out[#out + 1] = json_string(v)
  elseif t == 'boolean' then
    out[#out + 1] = v and 'true' or 'false'
  elseif is_tensor(v) then
    tensors[#tensors + 1] = { path, v }
    out[#out + 1] = '{"__tensor__":' .. json_string(path) .. '}'
  elseif t == 'table' then
    if depth > 64 then raise('mtt.checkpoint.save: ' .. path .. ' is nested too deeply (a cycle?)') end
    if getmetatable(v) ~= nil then
      raise('mtt.checkpoint.save: ' .. path .. ' is an object (a table with a metatable); store plain data, '
        .. 'e.g. gen:get_state() or opt:state_dict()')
    end
    local strings, ints, others = {}, {}, 0
    for k in pairs(v) do
      if type(k) == 'string' then
        if k == '__tensor__' or k == '__sparse__' then
          raise('mtt.checkpoint.save: ' .. path .. " uses the reserved key '" .. k .. "'")
        end
        strings[#strings + 1] = k
      elseif U.is_int(k) then
        ints[#ints + 1] = k
      else
        others = others + 1
      end
    end
    if others > 0 or (#strings > 0 and #ints > 0) then
      raise('mtt.checkpoint.save: ' .. path .. ' must have string keys or integer keys, not a mix (or other keys)')
    end
    table.sort(ints)
    local dense = #ints > 0 and ints[1] == 1 and ints[#ints] == #ints
    if dense then
      out[#out + 1] = '['
      for i = 1, #ints do
        if i > 1 then out[#out + 1] = ',' end
        encode(v[i], path .. '.' .. i, out, tensors, depth + 1)
      end
      out[#out + 1] = ']'
    elseif #ints > 0 then
      -- a sparse list (e.g. optimizer state of the parameters that had gradients): [[key, value], ...]
      out[#out + 1] = '{"__sparse__":['
      for i, k in ipairs(ints) do
        out[#out + 1] = (i > 1 and ',[' or '[') .. string.format('%d', k) .. ','
        encode(v[k], path .. '.' .. k, out, tensors, depth + 1)
        out[#out + 1] = ']'
      end
      out[#out + 1] = ']}'
    else
      table.sort(strings)
      out[#out + 1] = '{'
      for i, k in ipairs(strings) do
        if i > 1 then out[#out + 1] = ',' end
        out[#out + 1] = json_string(k) .. ':'
        encode(v[k], path .. '.' .. k, out, tensors, depth + 1)
      end
      out[#out + 1] = '}'
    end
  else
    raise(string.format('mtt.checkpoint.save: %s is a %s, which a checkpoint cannot hold', path, t))
  end
end

-- state -> JSON text, plus the list of {name, tensor} found inside it.
function M.encode_state(state)
  local out, tensors = {}, {}
  encode(state, 'state', out, tensors, 0)
  return table.concat(out), tensors
end

-- Tensor references {"__tensor__": name} back to tensors (taken out of `tensors`).
local function restore(v, tensors, path)
  if type(v) ~= 'table' then return v end
  local ref = v.__tensor__
  if ref ~= nil then
    local t = tensors[ref]
    if not t then raise('mtt.checkpoint.load: ' .. path .. ' refers to the missing tensor ' .. tostring(ref)) end
    tensors[ref] = nil
    return t
  end
  if v.__sparse__ ~= nil then
    local out = {}
    for _, pair in ipairs(v.__sparse__) do out[pair[1]] = restore(pair[2], tensors, path) end
    return out
  end
  for k, x in pairs(v) do v[k] = restore(x, tensors, path) end
  return v
end

local json
function M.decode_state(text, tensors, path)
  json = json or require('cjson').new()
  local ok, state = pcall(json.decode, text)
  if not ok then raise('mtt.checkpoint.load: ' .. path .. ': the state is not valid JSON (' .. tostring(state) .. ')') end
  return restore(state, tensors or {}, path)
end

-- ---- files ----

local function dirname(path) return path:match('^(.*)/[^/]*$') end

-- save(path, {tensors = {name = tensor} or {{name, tensor}, ...}, state = {...}, metadata = {k = 'v'}}
--      [, {durable = true}])
function M.save(path, ckpt, opts)
  local fname = 'mtt.checkpoint.save'
  if type(path) ~= 'string' or path == '' then raise(fname .. ': path must be a non-empty string') end
  if type(ckpt) ~= 'table' then raise(fname .. ': expected {tensors =, state =, metadata =}, got ' .. type(ckpt)) end
  require('mtt.sandbox').check_write(path, fname)
  options.check(fname, ckpt, 'tensors:table state:table metadata:table')
  local o = options.check(fname, opts, 'durable:boolean')
  local list = {}
  for k, v in pairs(ckpt.tensors or {}) do
    if type(k) == 'number' then list[#list + 1] = v else list[#list + 1] = { k, v } end
  end
  local text, inner = M.encode_state(ckpt.state or {})
  for _, pair in ipairs(inner) do list[#list + 1] = pair end
  local md = {}
  for k, v in pairs(ckpt.metadata or {}) do md[k] = v end
  md.format = md.format or 'pt' -- what Hugging Face loaders ask of a PyTorch safetensors file
  md['mtt.checkpoint'] = M.version
  md['mtt.state'] = text
  local dir = dirname(path)
  if dir and dir ~= '' then io_.makedirs(dir) end
  io_.save_safetensors(path, list, md, { durable = o.durable ~= false })
  return path
end

-- {tensors = name -> tensor (memory-mapped), state = table, metadata = table}
function M.load(path)
  if type(path) ~= 'string' then raise('mtt.checkpoint.load: path must be a string, got ' .. type(path)) end
  local tensors, md = io_.load_safetensors(path)
  local state = {}
  if md['mtt.state'] then state = M.decode_state(md['mtt.state'], tensors, path) end
  return { tensors = tensors, state = state, metadata = md }
end

function M.path(dir, step) return string.format('%s/step-%d.safetensors', dir, step) end

-- Checkpoints of a folder: {{step =, path =}, ...} by increasing step. Only complete files carry
-- a checkpoint's name (temporary ones end in .tmp-PID-N), so this lists complete ones.
function M.list(dir)
  local st = io_.stat(dir)
  if not st or not st.is_dir then return {} end
  local found = {}
  for _, name in ipairs(io_.listdir(dir)) do
    local step = name:match('^step%-(%d+)%.safetensors$')
    if step then found[#found + 1] = { step = tonumber(step), path = dir .. '/' .. name } end
  end
  table.sort(found, function(a, b) return a.step < b.step end)
  return found
end

-- The newest checkpoint whose file opens and validates: path, step (nil when there is none).
-- A damaged file (disk error, manual copy) is reported on stderr and skipped.
function M.latest(dir)
  local list = M.list(dir)
  for i = #list, 1, -1 do
    local ok, f = pcall(io_.open_safetensors, list[i].path)
    if ok then
      local md = f:metadata()
      f:close()
      if md and md['mtt.checkpoint'] then return list[i].path, list[i].step end
      io.stderr:write('mtt.checkpoint.latest: skipping ', list[i].path, ': not an mtt checkpoint\n')
    else
      io.stderr:write('mtt.checkpoint.latest: skipping ', tostring(f), '\n')
    end
  end
  return nil
end

-- Keeps the newest `keep` checkpoints of dir and removes the others, plus temporary files left
-- by writers that no longer run. Returns the removed paths.
function M.prune(dir, keep)
  if not U.is_int(keep) or keep < 0 then raise('mtt.checkpoint.prune: keep must be an integer >= 0') end
  local removed, list = {}, M.list(dir)
  for i = 1, #list - keep do
    assert(os.remove(list[i].path))
    removed[#removed + 1] = list[i].path
  end
  local st = io_.stat(dir)
  if st and st.is_dir then
    for _, name in ipairs(io_.listdir(dir)) do
      local pid = name:match('^step%-%d+%.safetensors%.tmp%-(%d+)%-%d+$')
      if pid and not io_.stat('/proc/' .. pid) then
        os.remove(dir .. '/' .. name)
        removed[#removed + 1] = dir .. '/' .. name
      end
    end
  end
  return removed
end

return M
