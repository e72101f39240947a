-- mtt.bundle.trace: runs a recipe and records the files it reads and writes, so that mtt pack
-- can take the recipe's inputs with it. Recorded: every file opened through io.open/io.lines,
-- every Lua module required (its file) and every dofile/loadfile, and mtt's own readers and
-- writers (safetensors, archives and corpora, tokenizers, checkpoints), all through
-- mtt.sandbox's policy hook in "trace" mode. A file is an input when it existed and was read
-- before the run wrote it.
local sandbox = require 'mtt.sandbox'
local fs = require 'mtt.bundle.fs'

local M = {}

-- run(recipe, args) -> {reads = {abs paths, first read order}, writes = {abs = true}, write_dirs,
-- c_modules = {names}, returned = the recipe's first result}
function M.run(recipe, args)
  local reads, seen, writes, write_dirs, c_modules = {}, {}, {}, {}, {}
  local trace = {
    read = function(abs)
      if not seen[abs] and not writes[abs] then
        seen[abs] = true
        reads[#reads + 1] = abs
      end
    end,
    write = function(abs)
      writes[abs] = true
      write_dirs[fs.dirname(abs)] = true
    end,
  }
  local real_require, real_dofile, real_loadfile = require, dofile, loadfile
  local before = {}
  for name in pairs(package.loaded) do before[name] = true end
  _G.require = function(name)
    -- recorded even when already loaded (by an earlier run in this process)
    if type(name) == 'string' and not name:match('^mtt') then
      local path = package.searchpath(name, package.path)
      if path then trace.read(fs.absolute(path))
      elseif name ~= 'cjson' and name ~= 'cjson.safe' and package.searchpath(name, package.cpath) then
        c_modules[#c_modules + 1] = name -- (cjson: what mtt itself uses; pure data)
      end
    end
    return real_require(name)
  end
  _G.dofile = function(path)
    if path then trace.read(fs.absolute(path)) end
    return real_dofile(path)
  end
  _G.loadfile = function(path, ...)
    if path then trace.read(fs.absolute(path)) end
    return real_loadfile(path, ...)
  end
  trace.read(fs.absolute(recipe))
  local ok, res = pcall(sandbox.run, recipe, { trust = true, args = args, trace = trace })
  _G.require, _G.dofile, _G.loadfile = real_require, real_dofile, real_loadfile
  -- the recipe's own modules are loaded afresh by the next run in this process
  for name in pairs(package.loaded) do
    if not before[name] and not name:match('^mtt') then package.loaded[name] = nil end
  end
  if not ok then error(res, 0) end
  return { reads = reads, writes = writes, write_dirs = write_dirs, c_modules = c_modules, returned = res }
end

return M
