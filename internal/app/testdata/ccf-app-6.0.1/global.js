// Copyright (c) Microsoft Corporation. All rights reserved.
// Licensed under the Apache 2.0 License.
/**
 * This module describes the global {@linkcode ccf} variable.
 * Direct access of this module or the {@linkcode ccf} variable is
 * typically not needed as all of its functionality is exposed
 * via other, often more high-level, modules.
 *
 * Accessing the {@linkcode ccf} global in a type-safe way is done
 * as follows:
 *
 * ```
 * import { ccf } from '@microsoft/ccf-app/global.js';
 * ```
 *
 * @module
 */
// The global ccf variable and associated types are exported
// as a regular module instead of using an ambient namespace
// in a .d.ts definition file.
// This avoids polluting the global namespace.
export const ccf = globalThis.ccf;
export const snp_attestation = globalThis
    .snp_attestation;
