-- An example Lua task spec (a table of instances, with answer options for rank classification):
-- `mtt.tasks.load('tasks/example_opposites.lua')`. Not part of the shipped collection.
return {
  name = 'example_opposites', categories = { 'Word Relation Classification' },
  definition = 'Are the two words opposites? Answer yes or no.',
  options = { 'yes', 'no' }, metric = 'acc',
  positive_examples = { { input = 'hot, cold', output = 'yes', explanation = 'Hot is the opposite of cold.' } },
  instances = {
    { input = 'up, down', outputs = { 'yes' } }, { input = 'big, large', outputs = { 'no' } },
    { input = 'early, late', outputs = { 'yes' } }, { input = 'quick, fast', outputs = { 'no' } },
    { input = 'open, closed', outputs = { 'yes' } }, { input = 'red, blue', outputs = { 'no' } },
  },
}
