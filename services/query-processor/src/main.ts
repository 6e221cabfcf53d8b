#!/usr/bin/env node
// Composition root: config -> deps -> start -> signals (see runService in @vecraft/common).
import { runService } from "@vecraft/common";
import { queryConfigSchema } from "./config.js";
import { start } from "./service.js";

runService({
  title: "vecraft query processor",
  name: "query",
  schema: queryConfigSchema,
  start: start,
  announce: (running) => `Vecraft query processor serving on ${running.url}; Ctrl-C to stop`,
});
