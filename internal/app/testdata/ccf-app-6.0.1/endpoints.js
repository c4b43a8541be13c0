// Copyright (c) Microsoft Corporation. All rights reserved.
// Licensed under the Apache 2.0 License.
/**
 * The `endpoints` module contains all types needed to handle
 * requests and responses in endpoint functions.
 *
 * @module
 */
import { ccf } from "./global.js";
/**
 * @inheritDoc global!CCFRpc.setApplyWrites
 */
export const setApplyWrites = ccf.rpc.setApplyWrites.bind(ccf.rpc);
/**
 * @inheritDoc global!CCFRpc.setClaimsDigest
 */
export const setClaimsDigest = ccf.rpc.setClaimsDigest.bind(ccf.rpc);
