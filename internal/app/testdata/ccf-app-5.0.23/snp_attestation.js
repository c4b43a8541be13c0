// Copyright (c) Microsoft Corporation. All rights reserved.
// Licensed under the Apache 2.0 License.
/**
 * The `snp_attestation` module provides SNP Attestation Validation.
 *
 * @module
 */
import { snp_attestation } from "./global";
/**
 * @inheritDoc global!SnpAttestation.verifySnpAttestation
 */
export const verifySnpAttestation = snp_attestation.verifySnpAttestation;
