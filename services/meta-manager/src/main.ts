#!/usr/bin/env node
// Composition root: config -> deps -> start -> signals (see runService in @vecraft/common).
import { runService } from "@vecraft/common";
import { metaConfigSchema } from "./config.js";
import { start } from "./service.js";

runService({
  title: "vecraft meta-manager",
  name: "meta",
  schema: metaConfigSchema,
  start: start,
  announce: (running, config) =>
    `Vecraft meta-manager serving on ${running.url} (catalog in ${config.store === "etcd" ? `etcd at ${config.etcdEndpoints.join(",")}` : `${config.dataDir}/meta`}); Ctrl-C to stop`,
});
