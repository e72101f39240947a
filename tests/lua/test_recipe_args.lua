-- test_recipe_args.lua: a recipe's command line (mtt.recipe.args): typed --set values, lists,
-- presets and their order, errors that name the accepted settings, and --help through the real
-- `mtt run` (exit 0, every setting with its default and the preset's value where it differs).
local mtt = require 'mtt'
local T = dofile(mtt.root .. '/tests/lua/testlib.lua')
local checker = T.checker('test_recipe_args')
local check, expect_error = checker.check, checker.expect_error
local parse = require('mtt.recipe.args').parse

local defaults = { steps = 100, lr = 1e-3, name = 'base', quiet = false, ns = { 5, 10 }, fmts = { 'id', 'tk' } }
local presets = { quick = { steps = 10, ns = { 4 } }, big = { steps = 1000, lr = 3e-4 } }

local cfg, applied = parse('toy', defaults, presets, {})
check(cfg.steps == 100 and cfg.lr == 1e-3 and cfg.name == 'base' and cfg.quiet == false and #applied == 0,
  'no arguments: the defaults')
check(cfg ~= defaults and cfg.ns == defaults.ns, 'a fresh table holding the defaults')

cfg = parse('toy', defaults, presets, { '--set', 'steps=7', '--set=lr=0.5', '--set', 'name=x=y', '--set', 'quiet=1',
  '--set', 'ns=1,2,3', '--set', 'fmts=exemplars' })
check(cfg.steps == 7 and cfg.lr == 0.5 and cfg.name == 'x=y' and cfg.quiet == true, 'typed as the defaults')
check(#cfg.ns == 3 and cfg.ns[3] == 3 and type(cfg.ns[1]) == 'number', 'a list of numbers')
check(#cfg.fmts == 1 and cfg.fmts[1] == 'exemplars', 'a list of strings')
check(defaults.steps == 100 and #defaults.ns == 2, 'the defaults are left as they were')

-- --set wins over a preset wherever it stands; presets apply in order
cfg, applied = parse('toy', defaults, presets, { '--set', 'steps=3', '--quick' })
check(cfg.steps == 3 and #cfg.ns == 1 and cfg.ns[1] == 4 and applied[1] == 'quick', '--set before a preset still wins')
cfg = parse('toy', defaults, presets, { '--quick', '--big' })
check(cfg.steps == 1000 and cfg.lr == 3e-4 and cfg.ns[1] == 4, 'later presets override earlier ones')

expect_error('unknown setting', { "toy: unknown setting 'stepz'", 'accepted: fmts, lr, name, ns, quiet, steps' },
  parse, 'toy', defaults, presets, { '--set', 'stepz=3' })
expect_error('a number expected', { "setting 'steps' needs a number, got 'many'" }, parse, 'toy', defaults, presets,
  { '--set', 'steps=many' })
expect_error('a boolean expected', { "setting 'quiet' needs true or false, got 'yes'" }, parse, 'toy', defaults,
  presets, { '--set', 'quiet=yes' })
expect_error('numbers in a list', { "setting 'ns' needs numbers, got 'x'" }, parse, 'toy', defaults, presets,
  { '--set', 'ns=1,x' })
expect_error('--set without =', { '--set needs key=value, got steps' }, parse, 'toy', defaults, presets,
  { '--set', 'steps' })
expect_error('unknown argument', { 'unknown argument --fast', '--set key=value, --help, --big, --quick' }, parse,
  'toy', defaults, presets, { '--fast' })
expect_error('a preset with an unknown key', { "preset 'bad' sets unknown key 'zz'" }, parse, 'toy', defaults,
  { bad = { zz = 1 } }, { '--bad' })

-- help text
local help = require('mtt.recipe.args').help('toy', defaults, presets)
check(help:find('usage: mtt run <toy recipe> [--big] [--quick] [--set key=value ...] [--help]', 1, true), 'usage line:\n' .. help)
check(help:match('\n  steps%s+100%s+%[%-%-big: 1000%]  %[%-%-quick: 10%]\n'), 'a row with both presets:\n' .. help)
check(help:match('\n  ns%s+5,10%s+%[%-%-quick: 4%]\n'), 'a list shown as --set takes it:\n' .. help)
check(help:match('\n  name%s+base\n'), 'a setting no preset changes:\n' .. help)

-- --help through the real command: exit 0, every setting of the recipe listed
local exe = mtt.root .. '/build/mtt'
local p = io.popen(string.format("cd '%s' && '%s' run recipes/pretrain.lua --quick --help; echo \"rc=$?\"", mtt.root, exe))
local out = p:read('*a')
p:close()
check(out:find('\nrc=0\n', 1, true), 'mtt run recipe --help exits 0:\n' .. out)
check(not out:find('pre-train', 1, true) or out:find('usage: mtt run <pretrain recipe>', 1, true), 'help, not a run')
local rows = 0
for k in pairs(mtt.recipe.pretrain.DEFAULTS) do
  rows = rows + 1
  check(out:find('\n  ' .. k .. ' ', 1, true), 'pretrain --help lists ' .. k .. ':\n' .. out)
end
check(rows > 10, 'pretrain has settings')

checker.done()
