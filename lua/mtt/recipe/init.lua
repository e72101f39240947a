-- mtt.recipe: the layer recipes are written in. Phases (pre-training, instruction tuning),
-- model folders, command-line settings, evaluations scheduled on a run's checkpoints, and the
-- study's analyses. Parts load on first use, so `require 'mtt'` stays light.
--
--   local cfg = mtt.recipe.args('name', defaults, {quick = {...}}, arg)
--   local out = mtt.recipe.pretrain(cfg)
--   local model, tok = mtt.recipe.model_dir.load(out.model_dir)
local M = {}

local PARTS = {
  pretrain = 'mtt.recipe.pretrain', model_dir = 'mtt.recipe.model_dir', evaluate = 'mtt.recipe.evaluate',
  instruct = 'mtt.recipe.instruct', study = 'mtt.recipe.study', rows = 'mtt.recipe.rows',
}

-- mtt.recipe.args(recipe_name, defaults, presets, argv) -> cfg (see mtt/recipe/args.lua)
function M.args(name, defaults, presets, argv)
  return (require 'mtt.recipe.args').parse(name, defaults, presets, argv)
end

return setmetatable(M, {
  __index = function(t, k)
    local mod = PARTS[k]
    if not mod then error("mtt.recipe: no part '" .. tostring(k) .. "'", 2) end
    local v = require(mod)
    rawset(t, k, v)
    return v
  end,
})
