// openapi_check.mjs DOC.json — validate an OpenAPI document with
// @seriousme/openapi-schema-validator (3.0 and 3.1). Run from a directory
// whose node_modules holds the package (test_rest_api.py copies it there).
// Prints {"valid": bool, "errors": ...}; exit 0 only when valid.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const result = await new Validator().validate(doc);
console.log(JSON.stringify(result));
process.exit(result.valid ? 0 : 1);
