-- An example Lua task spec (a generator): `mtt.tasks.load('tasks/example_count_vowels.lua')`.
-- Not part of the shipped collection (build/data/tasks); see tasks/README.md.
return {
  name = 'example_count_vowels', categories = { 'Program Execution' },
  definition = 'Count the vowels in the word.',
  n = 200, seed = 1, unique = true, metric = 'exact_match',
  generate = function(rng, i)
    local letters, w = 'abcdefghijklmnopqrstuvwxyz', {}
    for k = 1, rng:random(3, 8) do local j = rng:random(1, 26) w[k] = letters:sub(j, j) end
    local word = table.concat(w)
    local _, vowels = word:gsub('[aeiou]', '')
    return word, tostring(vowels)
  end,
}
