-- mtt.bundle.manifest: MANIFEST.json, the first member of a bundle: what mtt and which machine
-- made it, how the recipe was run (args, threads, seeds and resolved config when the run wrote
-- a config.json), and every other member with its sha256 and size. It holds no time stamp:
-- packing the same files twice gives the same bundle, byte for byte.
local fs = require 'mtt.bundle.fs'
local U = require 'mtt.util'

local raise = U.raise
local M = {}
M.FORMAT = 'mtt.bundle/1'
M.NAME = 'MANIFEST.json'

function M.encode(m) return require('mtt.train.metrics').encode(m, '  ') .. '\n' end

function M.decode(text, where)
  local json = require('cjson').new()
  json.decode_max_depth(64)
  local ok, m = pcall(json.decode, text)
  if not ok or type(m) ~= 'table' then raise('mtt.bundle: ' .. where .. ': MANIFEST.json is not valid JSON') end
  if m.format ~= M.FORMAT then
    raise(string.format('mtt.bundle: %s: manifest format %s, expected %s', where, tostring(m.format), M.FORMAT))
  end
  return m
end

-- A member path the manifest may name: relative, normalized, under files/ or results/.
local function valid_path(p)
  return type(p) == 'string' and p:sub(1, 1) ~= '/' and fs.normalize(p) == p and not ('/' .. p .. '/'):find('/%.%./')
    and (p:match('^files/.') or p:match('^results/.')) ~= nil
end

-- The machine a run depends on for bit-exact results: architecture, OS and CPU model.
function M.machine()
  local cpu = '?'
  local text = fs.read_file('/proc/cpuinfo')
  if text then cpu = text:match('model name%s*:%s*([^\n]+)') or cpu end
  return { arch = jit.arch, os = jit.os, cpu = cpu }
end

-- Checks the folder an archive was unpacked into against its manifest: every file listed is
-- there with its size and sha256, nothing else is there. Errors name the file.
function M.check(dir, where)
  local text = fs.read_file(dir .. '/' .. M.NAME)
  if not text then raise('mtt.bundle: ' .. where .. ' has no ' .. M.NAME .. ' (not an mtt bundle)') end
  local m = M.decode(text, where)
  if type(m.files) ~= 'table' then raise('mtt.bundle: ' .. where .. ': the manifest lists no files') end
  local listed = {}
  for i, f in ipairs(m.files) do
    if type(f) ~= 'table' or not valid_path(f.path) then
      raise(string.format('mtt.bundle: %s: manifest entry %d has a bad path %s', where, i, tostring(f and f.path)))
    end
    listed[f.path] = true
    local kind = fs.lstat(dir .. '/' .. f.path)
    if kind ~= 'file' then raise(string.format("mtt.bundle: %s: '%s' is in the manifest but not in the bundle", where, f.path)) end
    local sha, size = fs.sha256_file(dir .. '/' .. f.path)
    if size ~= f.size or sha ~= f.sha256 then
      raise(string.format("mtt.bundle: %s: '%s' does not match the manifest (sha256 %s, %d bytes; the manifest " ..
        "says %s, %s bytes): the bundle was changed after it was packed", where, f.path, sha, size,
        tostring(f.sha256), tostring(f.size)))
    end
  end
  for _, rel in ipairs(fs.walk(dir)) do
    if rel ~= M.NAME and not listed[rel] then
      raise(string.format("mtt.bundle: %s: '%s' is in the bundle but not in the manifest", where, rel))
    end
  end
  if not listed['files/' .. m.recipe] then
    raise('mtt.bundle: ' .. where .. ': the recipe ' .. tostring(m.recipe) .. ' is not among the files')
  end
  -- what a run takes from the manifest must be well-formed: it comes from someone else
  if m.threads ~= nil and (type(m.threads) ~= 'number' or m.threads ~= math.floor(m.threads) or m.threads < 1
    or m.threads > 4096) then
    raise('mtt.bundle: ' .. where .. ': bad thread count ' .. tostring(m.threads))
  end
  if type(m.args) ~= 'table' then raise('mtt.bundle: ' .. where .. ': args must be a list') end
  for i, a in ipairs(m.args) do
    if type(a) ~= 'string' then raise('mtt.bundle: ' .. where .. ': args[' .. i .. '] is not a string') end
  end
  if type(m.recipe) ~= 'string' then raise('mtt.bundle: ' .. where .. ': the manifest names no recipe') end
  if m.results ~= nil and (type(m.results) ~= 'string' or not valid_path('results/' .. m.results)) then
    raise('mtt.bundle: ' .. where .. ': bad results folder ' .. tostring(m.results))
  end
  return m
end

return M
