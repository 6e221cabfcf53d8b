#!/usr/bin/env node
// Composition root: config -> deps -> start -> signals (see runService in @vecraft/common).
import { runService } from "@vecraft/common";
import { journalConfigSchema } from "./config.js";
import { start } from "./service.js";

runService({
  title: "vecraft journal service",
  name: "journal",
  schema: journalConfigSchema,
  start: start,
  announce: (running, config) => `Vecraft journal serving on ${running.url} (data in ${config.dataDir}); Ctrl-C to stop`,
});
