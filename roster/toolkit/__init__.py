"""Tools beyond the core three (`roster.tools`): the other built-ins, tools declared in
config (`[[tools]]`), tools from Python entry points (`agentdeck.tools`), and the
registry that puts them together (`registry.build_toolbox`).

Every tool here validates its arguments against full JSON Schema before it runs, and
carries its own approval policy (overridable per tool in `[tool_policy.<name>]`).
"""
