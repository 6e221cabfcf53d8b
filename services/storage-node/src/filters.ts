// Filters arrive as JSON text in the public filter language; @vecraft/model compiles them
// to parameterised SQL against the collection's schema (values are never spliced).
import { InvalidArgumentError } from "@vecraft/common";
import { compileFilter, specFromProto, type CollectionSpec } from "@vecraft/model";
import type { Collection } from "@vecraft/rpc";
import type { FilterCompiler } from "./storage-service.js";

/** A FilterCompiler that caches each collection's validated spec (bounded). */
export function createFilterCompiler(maxSpecs = 1024): FilterCompiler {
  const specs = new Map<Collection, CollectionSpec>();
  return (collection, json) => {
    let spec = specs.get(collection);
    if (!spec) {
      spec = specFromProto(collection);
      if (specs.size >= maxSpecs) specs.clear();
      specs.set(collection, spec);
    }
    let filter: unknown;
    try {
      filter = JSON.parse(json);
    } catch (e) {
      throw new InvalidArgumentError(`filter: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    const compiled = compileFilter(spec, filter);
    return { sql: compiled.sql, params: compiled.params };
  };
}
