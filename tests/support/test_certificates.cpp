#include "test_certificates.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace rate_guard {
namespace testing {

namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertificateFree {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Certificate = std::unique_ptr<X509, CertificateFree>;

[[noreturn]] void fail(const std::string& what) {
  const unsigned long code = ERR_get_error();
  char text[256] = "";
  if (code != 0) {
    ERR_error_string_n(code, text, sizeof(text));
  }
  ERR_clear_error();
  throw std::runtime_error("test certificates: " + what + (code != 0 ? std::string(": ") + text : ""));
}

void check(bool ok, const std::string& what) {
  if (!ok) {
    fail(what);
  }
}

Key make_key() {
  Key key(EVP_EC_gen("P-256"));
  check(key != nullptr, "cannot make a P-256 key");
  return key;
}

void add_extension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  check(extension != nullptr, "bad extension " + value);
  const bool added = X509_add_ext(certificate, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  check(added, "cannot add extension " + value);
}

// A certificate for `common_name` with `key`, signed by `issuer` with
// `issuer_key` (itself when `issuer` is null: a self-signed CA). A CA when
// `alt_names` is empty, else a server and client certificate for them.
Certificate make_certificate(const std::string& common_name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                             const std::string& alt_names) {
  static long serial = 1;
  Certificate certificate(X509_new());
  check(certificate != nullptr, "X509_new");
  X509* c = certificate.get();
  check(X509_set_version(c, 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(c), serial++) == 1, "serial number");
  check(X509_gmtime_adj(X509_getm_notBefore(c), -3600) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(c), 2 * 24 * 3600) != nullptr, "notAfter");
  X509_NAME* name = X509_get_subject_name(c);
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) == 1,
        "subject");
  check(X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name) == 1, "issuer");
  check(X509_set_pubkey(c, key) == 1, "public key");
  X509* signer = issuer != nullptr ? issuer : c;
  add_extension(c, signer, NID_subject_key_identifier, "hash");
  add_extension(c, signer, NID_authority_key_identifier, "keyid:always");
  if (alt_names.empty()) {
    add_extension(c, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(c, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(c, signer, NID_key_usage, "critical,digitalSignature");
    add_extension(c, signer, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(c, signer, NID_subject_alt_name, alt_names);
  }
  check(X509_sign(c, issuer_key, EVP_sha256()) > 0, "cannot sign " + common_name);
  return certificate;
}

std::string write_certificate(const std::string& dir, const std::string& file, X509* certificate) {
  const std::string path = dir + "/" + file;
  FILE* out = std::fopen(path.c_str(), "w");
  check(out != nullptr, "cannot write " + path);
  const bool written = PEM_write_X509(out, certificate) == 1;
  check(std::fclose(out) == 0 && written, "cannot write " + path);
  return path;
}

std::string write_key(const std::string& dir, const std::string& file, EVP_PKEY* key) {
  const std::string path = dir + "/" + file;
  FILE* out = std::fopen(path.c_str(), "w");
  check(out != nullptr, "cannot write " + path);
  const bool written = PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  check(std::fclose(out) == 0 && written, "cannot write " + path);
  return path;
}

// The files, and their directory removed when the test binary exits.
class CertificateFiles {
 public:
  CertificateFiles() {
    files_.dir = make_temp_dir("rate_guard_tls");
    try {
      make(files_);
    } catch (...) {
      remove();
      throw;
    }
  }
  ~CertificateFiles() { remove(); }
  CertificateFiles(const CertificateFiles&) = delete;
  CertificateFiles& operator=(const CertificateFiles&) = delete;

  const TestCertificates& files() const { return files_; }

 private:
  static void make(TestCertificates& f) {
    const Key ca_key = make_key();
    const Certificate ca = make_certificate("rate_guard test CA", ca_key.get(), nullptr, ca_key.get(), "");
    const Key other_ca_key = make_key();
    const Certificate other_ca =
        make_certificate("rate_guard other CA", other_ca_key.get(), nullptr, other_ca_key.get(), "");
    const Key server_key = make_key();
    const Key client_key = make_key();
    const std::string server_names = "DNS:redis.test,IP:127.0.0.1";
    f.ca = write_certificate(f.dir, "ca.pem", ca.get());
    f.other_ca = write_certificate(f.dir, "other_ca.pem", other_ca.get());
    f.server_key = write_key(f.dir, "server.key", server_key.get());
    f.server = write_certificate(
        f.dir, "server.pem",
        make_certificate("redis.test", server_key.get(), ca.get(), ca_key.get(), server_names).get());
    f.other_ca_server = write_certificate(
        f.dir, "other_ca_server.pem",
        make_certificate("redis.test", server_key.get(), other_ca.get(), other_ca_key.get(), server_names).get());
    f.server_named_only = write_certificate(
        f.dir, "server_named_only.pem",
        make_certificate("redis.test", server_key.get(), ca.get(), ca_key.get(), "DNS:redis.test").get());
    f.client_key = write_key(f.dir, "client.key", client_key.get());
    f.client = write_certificate(
        f.dir, "client.pem",
        make_certificate("client.test", client_key.get(), ca.get(), ca_key.get(), "DNS:client.test").get());
  }
  void remove() {
    std::error_code ignored;
    std::filesystem::remove_all(files_.dir, ignored);
  }

  TestCertificates files_;
};

}  // namespace

const TestCertificates& test_certificates() {
  // Made once; a server started with them is stopped (by its own static,
  // made later, destroyed first) before the directory goes.
  static const CertificateFiles files;
  return files.files();
}

RedisServer::Options tls_server_options(bool require_client_certificate) {
  const TestCertificates& certificates = test_certificates();
  RedisServer::Options options;
  options.tls = RedisServer::Tls{certificates.server, certificates.server_key, certificates.ca,
                                 require_client_certificate};
  return options;
}

RedisTls trusting_tls() {
  RedisTls tls;
  tls.on = true;
  tls.verify = true;
  tls.trusted_certificate = test_certificates().ca;
  return tls;
}

}  // namespace testing
}  // namespace rate_guard
