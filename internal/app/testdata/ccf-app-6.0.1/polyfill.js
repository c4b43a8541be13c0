// Copyright (c) Microsoft Corporation. All rights reserved.
// Licensed under the Apache 2.0 License.
/**
 * This module polyfills CCF's native functions for use in
 * unit tests that run in Node.js instead of CCF.
 * It must be imported before all other imports like so:
 *
 * ```
 * import '@microsoft/ccf-app/polyfill.js';
 * ```
 *
 * Note that some functionality is not polyfilled,
 * for example historic state (for historical endpoints).
 *
 * @module
 */
import * as jscrypto from "crypto";
import { TextEncoder, TextDecoder } from "util";
// JavaScript's Map uses reference equality for non-primitive types,
// whereas CCF compares the content of the ArrayBuffer.
// To achieve CCF's semantics, all keys are base64-encoded.
class KvMapPolyfill {
    constructor() {
        this.map = new Map();
    }
    has(key) {
        return this.map.has(base64(key));
    }
    get(key) {
        return this.map.get(base64(key));
    }
    getVersionOfPreviousWrite(key) {
        throw new Error("Not implemented");
    }
    set(key, value) {
        this.map.set(base64(key), value);
        return this;
    }
    delete(key) {
        this.map.delete(base64(key));
    }
    clear() {
        this.map.clear();
    }
    forEach(callback) {
        this.map.forEach((value, key, _) => {
            callback(value, unbase64(key), this);
        });
    }
    get size() {
        return this.map.size;
    }
}
class CCFPolyfill {
    constructor() {
        this.kv = new Proxy({}, {
            get: (target, name, receiver) => {
                if (typeof name === "string") {
                    return name in target
                        ? target[name]
                        : (target[name] = new KvMapPolyfill());
                }
                return Reflect.get(target, name, receiver);
            },
        });
        this.consensus = {
            getLastCommittedTxId() {
                throw new Error("Not implemented");
            },
            getStatusForTxId(view, seqno) {
                throw new Error("Not implemented");
            },
            getViewForSeqno(seqno) {
                throw new Error("Not implemented");
            },
        };
        this.historical = {
            getStateRange(handle, startSeqno, endSeqno, secondsUntilExpiry) {
                throw new Error("Not implemented");
            },
            dropCachedStates(handle) {
                throw new Error("Not implemented");
            },
        };
        this.rpc = {
            setApplyWrites(force) {
                throw new Error("Not implemented");
            },
            setClaimsDigest(digest) {
                throw new Error("Not implemented");
            },
        };
        this.crypto = {
            sign(algorithm, key, data) {
                if (algorithm.name === "HMAC") {
                    const hashAlg = algorithm.hash
                        .replace("-", "")
                        .toLowerCase();
                    const hmac = jscrypto.createHmac(hashAlg, key);
                    hmac.update(new Uint8Array(data));
                    return hmac.digest();
                }
                let padding = undefined;
                const privKey = jscrypto.createPrivateKey(key);
                if (privKey.asymmetricKeyType == "rsa") {
                    if (algorithm.name === "RSA-PSS") {
                        padding = jscrypto.constants.RSA_PKCS1_PSS_PADDING;
                    }
                    else {
                        throw new Error("incompatible signing algorithm for given key type");
                    }
                }
                else if (privKey.asymmetricKeyType == "ec") {
                    if (algorithm.name !== "ECDSA") {
                        throw new Error("incompatible signing algorithm for given key type");
                    }
                }
                else if (privKey.asymmetricKeyType == "ed25519") {
                    if (algorithm.name !== "EdDSA") {
                        throw new Error("incompatible signing algorithm for given key type");
                    }
                }
                else {
                    throw new Error("unrecognized signing algorithm");
                }
                if (algorithm.name === "EdDSA") {
                    return jscrypto.sign(null, new Uint8Array(data), privKey);
                }
                const hashAlg = algorithm.hash.replace("-", "").toLowerCase();
                const signer = jscrypto.createSign(hashAlg);
                signer.update(new Uint8Array(data));
                return signer.sign({
                    key: privKey,
                    dsaEncoding: "ieee-p1363",
                    padding: padding,
                    saltLength: algorithm.saltLength ?? 0,
                });
            },
            verifySignature(algorithm, key, signature, data) {
                let padding = undefined;
                const pubKey = jscrypto.createPublicKey(key);
                if (pubKey.asymmetricKeyType == "rsa") {
                    if (algorithm.name === "RSA-PSS") {
                        padding = jscrypto.constants.RSA_PKCS1_PSS_PADDING;
                    }
                    else {
                        throw new Error("incompatible signing algorithm for given key type");
                    }
                }
                else if (pubKey.asymmetricKeyType == "ec") {
                    if (algorithm.name !== "ECDSA") {
                        throw new Error("incompatible signing algorithm for given key type");
                    }
                }
                else if (pubKey.asymmetricKeyType == "ed25519") {
                    if (algorithm.name !== "EdDSA") {
                        throw new Error("incompatible signing algorithm for given key type");
                    }
                }
                else {
                    throw new Error("unrecognized signing algorithm");
                }
                if (algorithm.name === "EdDSA") {
                    return jscrypto.verify(null, new Uint8Array(data), pubKey, new Uint8Array(signature));
                }
                const hashAlg = algorithm.hash.replace("-", "").toLowerCase();
                const verifier = jscrypto.createVerify(hashAlg);
                verifier.update(new Uint8Array(data));
                return verifier.verify({
                    key: pubKey,
                    dsaEncoding: "ieee-p1363",
                    padding: padding,
                    saltLength: algorithm.saltLength ?? 0,
                }, new Uint8Array(signature));
            },
            generateAesKey(size) {
                return nodeBufToArrBuf(jscrypto.randomBytes(size / 8));
            },
            generateRsaKeyPair(size, exponent) {
                const rsaKeyPair = jscrypto.generateKeyPairSync("rsa", {
                    modulusLength: size,
                    publicExponent: exponent,
                    publicKeyEncoding: {
                        type: "spki",
                        format: "pem",
                    },
                    privateKeyEncoding: {
                        type: "pkcs8",
                        format: "pem",
                    },
                });
                return rsaKeyPair;
            },
            generateEcdsaKeyPair(curve) {
                var curve_name = curve;
                if (curve == "secp256r1")
                    curve_name = "prime256v1";
                const ecdsaKeyPair = jscrypto.generateKeyPairSync("ec", {
                    namedCurve: curve_name,
                    publicKeyEncoding: {
                        type: "spki",
                        format: "pem",
                    },
                    privateKeyEncoding: {
                        type: "pkcs8",
                        format: "pem",
                    },
                });
                return ecdsaKeyPair;
            },
            generateEddsaKeyPair(curve) {
                if (curve === "curve25519") {
                    return jscrypto.generateKeyPairSync("ed25519", {
                        publicKeyEncoding: {
                            type: "spki",
                            format: "pem",
                        },
                        privateKeyEncoding: {
                            type: "pkcs8",
                            format: "pem",
                        },
                    });
                }
                else {
                    if (curve !== "x25519")
                        throw new Error("Unsupported curve for EdDSA key pair generation: " + curve);
                    return jscrypto.generateKeyPairSync("x25519", {
                        publicKeyEncoding: {
                            type: "spki",
                            format: "pem",
                        },
                        privateKeyEncoding: {
                            type: "pkcs8",
                            format: "pem",
                        },
                    });
                }
            },
            wrapKey(key, wrappingKey, parameters) {
                if (parameters.name === "RSA-OAEP") {
                    return nodeBufToArrBuf(jscrypto.publicEncrypt({
                        key: Buffer.from(wrappingKey),
                        oaepHash: "sha256",
                        oaepLabel: parameters.label
                            ? new Uint8Array(parameters.label)
                            : undefined,
                        padding: jscrypto.constants.RSA_PKCS1_OAEP_PADDING,
                    }, new Uint8Array(key)));
                }
                else if (parameters.name === "AES-KWP") {
                    const iv = Buffer.from("A65959A6", "hex"); // defined in RFC 5649
                    const cipher = jscrypto.createCipheriv("id-aes256-wrap-pad", new Uint8Array(wrappingKey), iv);
                    return nodeBufToArrBuf(Buffer.concat([cipher.update(new Uint8Array(key)), cipher.final()]));
                }
                else if (parameters.name === "RSA-OAEP-AES-KWP") {
                    const randomAesKey = this.generateAesKey(parameters.aesKeySize);
                    const wrap1 = this.wrapKey(randomAesKey, wrappingKey, {
                        name: "RSA-OAEP",
                        label: parameters.label,
                    });
                    const wrap2 = this.wrapKey(key, randomAesKey, {
                        name: "AES-KWP",
                    });
                    return nodeBufToArrBuf(Buffer.concat([Buffer.from(wrap1), Buffer.from(wrap2)]));
                }
                else {
                    throw new Error("unsupported wrapAlgo.name");
                }
            },
            unwrapKey(wrappedKey, unwrappingKey, unwrapAlgo) {
                if (unwrapAlgo.name == "RSA-OAEP") {
                    return nodeBufToArrBuf(jscrypto.privateDecrypt({
                        key: Buffer.from(unwrappingKey),
                        oaepHash: "sha256",
                        padding: jscrypto.constants.RSA_PKCS1_OAEP_PADDING,
                    }, new Uint8Array(wrappedKey)));
                }
                else if (unwrapAlgo.name == "AES-KWP") {
                    const iv = Buffer.from("A65959A6", "hex"); // defined in RFC 5649
                    const decipher = jscrypto.createDecipheriv("id-aes256-wrap-pad", new Uint8Array(unwrappingKey), iv);
                    return nodeBufToArrBuf(Buffer.concat([
                        decipher.update(new Uint8Array(wrappedKey)),
                        decipher.final(),
                    ]));
                }
                else if (unwrapAlgo.name == "RSA-OAEP-AES-KWP") {
                    const keyInfo = jscrypto.createPrivateKey(Buffer.from(unwrappingKey));
                    // asymmetricKeyDetails added in Node.js 15.7.0, we're at 16.
                    console.log(`Modulus length: `, keyInfo?.asymmetricKeyDetails?.modulusLength);
                    const modulusLengthInBytes = (keyInfo?.asymmetricKeyDetails?.modulusLength || 2048) / 8;
                    const wrap1 = wrappedKey.slice(0, modulusLengthInBytes);
                    const wrap2 = wrappedKey.slice(modulusLengthInBytes);
                    const aesKey = this.unwrapKey(wrap1, unwrappingKey, {
                        name: "RSA-OAEP",
                        label: unwrapAlgo.label,
                    });
                    return this.unwrapKey(wrap2, aesKey, {
                        name: "AES-KWP",
                    });
                }
                else {
                    throw new Error("unsupported unwrapAlgo.name");
                }
            },
            digest(algorithm, data) {
                if (algorithm === "SHA-256") {
                    return nodeBufToArrBuf(jscrypto.createHash("sha256").update(new Uint8Array(data)).digest());
                }
                else {
                    throw new Error("unsupported algorithm");
                }
            },
            isValidX509CertBundle(pem) {
                if ("X509Certificate" in jscrypto) {
                    const sep = "-----END CERTIFICATE-----";
                    const items = pem.split(sep);
                    if (items.length === 1) {
                        return false;
                    }
                    const pems = items.slice(0, -1).map((p) => p + sep);
                    for (const [i, p] of pems.entries()) {
                        try {
                            new jscrypto.X509Certificate(p);
                        }
                        catch (e) {
                            console.error(`cert ${i} is not valid: ${e.message}`);
                            console.error(p);
                            return false;
                        }
                    }
                    return true;
                }
                else {
                    throw new Error("X509 validation unsupported, Node.js version too old (< 15.6.0)");
                }
            },
            isValidX509CertChain(chain, trusted) {
                if (!("X509Certificate" in jscrypto)) {
                    throw new Error("X509 validation unsupported, Node.js version too old (< 15.6.0)");
                }
                try {
                    const toX509Array = (pem) => {
                        const sep = "-----END CERTIFICATE-----";
                        const items = pem.split(sep);
                        if (items.length === 1) {
                            return [];
                        }
                        const pems = items.slice(0, -1).map((p) => p + sep);
                        const arr = pems.map((pem) => new jscrypto.X509Certificate(pem));
                        return arr;
                    };
                    const certsChain = toX509Array(chain);
                    const certsTrusted = toX509Array(trusted);
                    if (certsChain.length === 0) {
                        throw new Error("chain cannot be empty");
                    }
                    for (let i = 0; i < certsChain.length - 1; i++) {
                        if (!certsChain[i].checkIssued(certsChain[i + 1])) {
                            throw new Error(`chain[${i}] is not issued by chain[${i + 1}]`);
                        }
                    }
                    for (const certChain of certsChain) {
                        for (const certTrusted of certsTrusted) {
                            if (certChain.fingerprint === certTrusted.fingerprint) {
                                return true;
                            }
                            if (certChain.verify(certTrusted.publicKey)) {
                                return true;
                            }
                        }
                    }
                    throw new Error("none of the chain certificates are identical to or issued by a trusted certificate");
                }
                catch (e) {
                    console.error(`certificate chain validation failed: ${e.message}`);
                    return false;
                }
            },
            pubPemToJwk(pem, kid) {
                const key = jscrypto.createPublicKey({
                    key: pem,
                });
                const jwk = key.export({
                    format: "jwk",
                });
                jwk.kid = kid;
                return jwk;
            },
            pemToJwk(pem, kid) {
                const key = jscrypto.createPrivateKey({
                    key: pem,
                });
                const jwk = key.export({
                    format: "jwk",
                });
                jwk.kid = kid;
                return jwk;
            },
            pubRsaPemToJwk(pem, kid) {
                const key = jscrypto.createPublicKey({
                    key: pem,
                });
                const jwk = key.export({
                    format: "jwk",
                });
                jwk.kid = kid;
                return jwk;
            },
            rsaPemToJwk(pem, kid) {
                const key = jscrypto.createPrivateKey({
                    key: pem,
                });
                const jwk = key.export({
                    format: "jwk",
                });
                jwk.kid = kid;
                return jwk;
            },
            pubEddsaPemToJwk(pem, kid) {
                const key = jscrypto.createPublicKey({
                    key: pem,
                });
                const jwk = key.export({
                    format: "jwk",
                });
                jwk.kid = kid;
                return jwk;
            },
            eddsaPemToJwk(pem, kid) {
                const key = jscrypto.createPrivateKey({
                    key: pem,
                });
                const jwk = key.export({
                    format: "jwk",
                });
                jwk.kid = kid;
                return jwk;
            },
            pubJwkToPem(jwk) {
                const key = jscrypto.createPublicKey({
                    key: jwk,
                    format: "jwk",
                });
                return key.export({ type: "spki", format: "pem" }).toString();
            },
            jwkToPem(jwk) {
                const key = jscrypto.createPrivateKey({
                    key: jwk,
                    format: "jwk",
                });
                return key.export({ type: "pkcs8", format: "pem" }).toString();
            },
            pubRsaJwkToPem(jwk) {
                const key = jscrypto.createPublicKey({
                    key: jwk,
                    format: "jwk",
                });
                return key.export({ type: "spki", format: "pem" }).toString();
            },
            rsaJwkToPem(jwk) {
                const key = jscrypto.createPrivateKey({
                    key: jwk,
                    format: "jwk",
                });
                return key.export({ type: "pkcs8", format: "pem" }).toString();
            },
            pubEddsaJwkToPem(jwk) {
                const key = jscrypto.createPublicKey({
                    key: jwk,
                    format: "jwk",
                });
                return key.export({ type: "spki", format: "pem" }).toString();
            },
            eddsaJwkToPem(jwk) {
                const key = jscrypto.createPrivateKey({
                    key: jwk,
                    format: "jwk",
                });
                return key.export({ type: "pkcs8", format: "pem" }).toString();
            },
        };
    }
    strToBuf(s) {
        return typedArrToArrBuf(new TextEncoder().encode(s));
    }
    // Note: this is stricter than CCF's bufToStr, as it will
    // reject buffers that are not valid UTF-8.
    bufToStr(v) {
        return new TextDecoder("utf-8", { fatal: true }).decode(v);
    }
    jsonCompatibleToBuf(v) {
        return this.strToBuf(JSON.stringify(v));
    }
    bufToJsonCompatible(v) {
        return JSON.parse(this.bufToStr(v));
    }
    generateAesKey(size) {
        return this.crypto.generateAesKey(size);
    }
    generateRsaKeyPair(size, exponent) {
        return this.crypto.generateRsaKeyPair(size, exponent);
    }
    generateEcdsaKeyPair(curve) {
        return this.crypto.generateEcdsaKeyPair(curve);
    }
    wrapKey(key, wrappingKey, parameters) {
        return this.crypto.wrapKey(key, wrappingKey, parameters);
    }
    unwrapKey(key, wrappingKey, parameters) {
        return this.crypto.unwrapKey(key, wrappingKey, parameters);
    }
    digest(algorithm, data) {
        return this.crypto.digest(algorithm, data);
    }
    isValidX509CertBundle(pem) {
        return this.crypto.isValidX509CertBundle(pem);
    }
    isValidX509CertChain(chain, trusted) {
        return this.crypto.isValidX509CertChain(chain, trusted);
    }
    enableUntrustedDateTime(enable) {
        throw new Error("Not implemented");
    }
    enableMetricsLogging(enable) {
        return true;
    }
}
globalThis.ccf = new CCFPolyfill();
class SnpAttestationPolyfill {
    verifySnpAttestation(evidence, endorsements, uvm_endorsements, endorsed_tcb) {
        throw new Error("Method not implemented.");
    }
}
globalThis.snp_attestation = new SnpAttestationPolyfill();
function nodeBufToArrBuf(buf) {
    // Note: buf.buffer is not safe, see docs.
    const arrBuf = new ArrayBuffer(buf.byteLength);
    buf.copy(new Uint8Array(arrBuf));
    return arrBuf;
}
function typedArrToArrBuf(ta) {
    return ta.buffer.slice(ta.byteOffset, ta.byteOffset + ta.byteLength);
}
function base64(buf) {
    return Buffer.from(buf).toString("base64");
}
function unbase64(s) {
    return nodeBufToArrBuf(Buffer.from(s, "base64"));
}
