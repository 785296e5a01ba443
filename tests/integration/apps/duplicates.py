"""A catalog with a duplicate id: loading it must fail with one clear line."""

import shards

app = shards.App()


@app.process("same", name="First")
def first(ctx: shards.ProcessContext) -> None:
    pass


@app.process("same", name="Second")
def second(ctx: shards.ProcessContext) -> None:
    pass
