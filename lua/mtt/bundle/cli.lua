-- mtt.bundle.cli: the mtt command's pack, unpack, verify and run BUNDLE (tools/mtt/main.c
-- calls main(command, args...)); returns the exit status: 0 done, 1 failed or the rerun
-- differs, 2 bad usage.
local M = {}

M.usage = [[
usage: mtt pack RECIPE.lua -o OUT.mtt [--with-results RUN_DIR] [--with-checkpoints]
                [--compression zstd|gzip|none] [-- recipe arguments...]
       mtt run BUNDLE.mtt [-o OUT_DIR] [--trust] [--threads N] [-- recipe arguments...]
       mtt verify BUNDLE.mtt [--rerun] [-o OUT_DIR] [--trust]
       mtt unpack BUNDLE.mtt [-o DIR]
pack runs the recipe once with tracing and packs it, the files it reads from outside the
installed mtt, a manifest (sha256 of every file, mtt version, machine, threads, args, seeds
and config) and, with --with-results, that run's folder (RUN_DIR must not exist yet).
run unpacks into the cache ($MTT_CACHE_DIR or ~/.cache/mtt), checks every file, and runs the
recipe in OUT_DIR (default NAME-run) in a sandbox (--trust lifts it); with packed results it
compares the metrics. verify checks the manifest; --rerun also reruns and compares.
]]

local function parse(args, spec)
  -- spec: option -> 'flag' | 'value'; returns options, positional list, args after --
  local o, pos, rest, i = {}, {}, nil, 1
  while i <= #args do
    local a = args[i]
    if a == '--' then
      rest = {}
      for j = i + 1, #args do rest[#rest + 1] = args[j] end
      break
    elseif spec[a] == 'flag' then
      o[a] = true
    elseif spec[a] == 'value' then
      if args[i + 1] == nil then return nil, a .. ' needs a value' end
      o[a] = args[i + 1]
      i = i + 1
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      return nil, 'unknown option ' .. a
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return o, pos, rest
end

local function print_compared(compared, r)
  if r and r.identical and #r.identical > 0 then
    print(string.format('note: %d other result files are identical, byte for byte', #r.identical))
  end
  if r and r.differ and #r.differ > 0 then
    print('note: other result files that differ (not compared field by field): ' .. table.concat(r.differ, ', '))
  end
  local same = true
  for _, c in ipairs(compared) do
    if #c.diffs == 0 then
      print(string.format('same: %s (every field but %s)', c.file, 'timing'))
    else
      same = false
      print(string.format('DIFFERENT: %s', c.file))
      for _, d in ipairs(c.diffs) do print('  ' .. d) end
    end
  end
  return same
end

local commands = {}

function commands.pack(args)
  local o, pos, rest = parse(args, { ['-o'] = 'value', ['--with-results'] = 'value', ['--with-checkpoints'] = 'flag',
    ['--compression'] = 'value' })
  if not o then return nil, pos end
  if #pos ~= 1 or not o['-o'] then return nil, 'pack needs RECIPE and -o OUT' end
  require('mtt.bundle').pack { recipe = pos[1], output = o['-o'], args = rest or {}, results = o['--with-results'],
    checkpoints = o['--with-checkpoints'] or false, compression = o['--compression'] }
  return 0
end

function commands.run(args)
  local o, pos, rest = parse(args, { ['-o'] = 'value', ['--trust'] = 'flag', ['--threads'] = 'value' })
  if not o then return nil, pos end
  if #pos ~= 1 then return nil, 'run needs one BUNDLE' end
  local r = require('mtt.bundle').run { bundle = pos[1], out = o['-o'], trust = o['--trust'] or false,
    threads = tonumber(o['--threads']), args = rest, seal = not o['--trust'] }
  print('run folder: ' .. r.out)
  if #r.compared > 0 then return print_compared(r.compared, r) and 0 or 1 end
  return 0
end

function commands.verify(args)
  local o, pos = parse(args, { ['-o'] = 'value', ['--trust'] = 'flag', ['--rerun'] = 'flag' })
  if not o then return nil, pos end
  if #pos ~= 1 then return nil, 'verify needs one BUNDLE' end
  local r = require('mtt.bundle').verify { bundle = pos[1], rerun = o['--rerun'] or false, out = o['-o'],
    trust = o['--trust'] or false, seal = not o['--trust'] }
  print(string.format('ok: %s: %d files match the manifest (mtt %s, %s, %d threads)', pos[1], r.files,
    tostring(r.manifest.mtt_version), tostring(r.manifest.machine and r.manifest.machine.cpu), r.manifest.threads or 0))
  if o['--rerun'] then
    print('rerun folder: ' .. r.out)
    return print_compared(r.compared, r) and 0 or 1
  end
  return 0
end

function commands.unpack(args)
  local o, pos = parse(args, { ['-o'] = 'value' })
  if not o then return nil, pos end
  if #pos ~= 1 then return nil, 'unpack needs one BUNDLE' end
  local out = o['-o'] or pos[1]:match('([^/]+)$'):gsub('%.mtt$', '')
  local m = require('mtt.bundle').unpack { bundle = pos[1], out = out }
  print(string.format('%s: %d files, checked against the manifest; recipe files/%s', out, #m.files, m.recipe))
  return 0
end

function M.main(cmd, ...)
  local f = commands[cmd]
  if not f then
    io.stderr:write('mtt: unknown bundle command ', tostring(cmd), '\n', M.usage)
    return 2
  end
  local status, err = f({ ... })
  if not status then
    io.stderr:write('mtt ', cmd, ': ', err, '\n', M.usage)
    return 2
  end
  return status
end

return M
