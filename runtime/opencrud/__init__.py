"""The generated OpenCRUD API of a deployed service (reference section 5).

`sdl` generates the schema exactly as Prisma does; the query compiler turns each root field of a
query into one SQL statement whose result is the JSON of the answer; mutations write inside one
transaction per request. `executor.plan` turns a request into steps (`steps`), which the HTTP app
drives on the event loop or in a worker thread; `executor.execute` is the synchronous shortcut.
"""
