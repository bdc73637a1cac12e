#!/usr/bin/env node
// The schema oracle: prints the OpenCRUD schema Prisma 1's own generator makes for a datamodel.
// The modules come from the prisma1@1.34.12 install (NODE_PATH=<its node_modules>).
// Usage: node gen_schema.js DATAMODEL_FILE [postgres|mysql|mongo]
'use strict';
const { readFileSync } = require('fs');
const generateSchema = require('prisma-generate-schema').default;
const { DatabaseType } = require('prisma-datamodel');

const [file, database = 'postgres'] = process.argv.slice(2);
process.stdout.write(generateSchema(readFileSync(file, 'utf8'), DatabaseType[database]));
