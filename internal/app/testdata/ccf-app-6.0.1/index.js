// Copyright (c) Microsoft Corporation. All rights reserved.
// Licensed under the Apache 2.0 License.
/**
 * This module exports the main API giving access to common functionality
 * in a flat namespace.
 *
 * Any modules not re-exported here have to be explicitly imported.
 * This is the case for advanced functionality like cryptography.
 *
 * ```
 * import * as ccfapp from '@microsoft/ccf-app';
 * ```
 *
 * @module ROOT
 */
export * from "./kv.js";
export * from "./converters.js";
export * from "./consensus.js";
export * from "./historical.js";
export * from "./endpoints.js";
