"""The generated OpenCRUD API of a deployed service (reference section 5).

`sdl` generates the schema exactly as Prisma does; the query compiler turns each root field of a
query into one SQL statement whose result is the JSON of the answer; mutations write inside one
transaction per request; `executor.execute` is the entry point the HTTP app calls.
"""
