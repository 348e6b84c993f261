#include "libevent_tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>
#include <string>

#include "redis/cluster_slots_reply.h"

namespace rate_guard::testing {

namespace {

// The oldest error OpenSSL queued (the cause; later ones follow from it), and
// clears the queue.
std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return {};
  }
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

}  // namespace

LibeventTls::LibeventTls(const RedisTls& tls) : context_(SSL_CTX_new(TLS_client_method())), verify_(tls.verify) {
  if (context_ == nullptr) {
    throw std::runtime_error("cannot create the TLS context for Redis: " + openssl_error());
  }
  auto fail = [this](const std::string& message) {
    const std::string why = openssl_error();
    SSL_CTX_free(context_);
    throw std::runtime_error(message + (why.empty() ? "" : ": " + why));
  };
  // As the module: TLS 1.2 and 1.3.
  if (SSL_CTX_set_min_proto_version(context_, TLS1_2_VERSION) != 1) {
    fail("cannot restrict the TLS versions");
  }
  if (!tls.certificate.empty() &&
      (SSL_CTX_use_certificate_chain_file(context_, tls.certificate.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(context_, tls.certificate_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(context_) != 1)) {
    fail("cannot load tls_certificate \"" + tls.certificate + "\" with its key \"" + tls.certificate_key + "\"");
  }
  if (tls.verify) {
    if (!tls.trusted_certificate.empty()) {
      if (SSL_CTX_load_verify_locations(context_, tls.trusted_certificate.c_str(), nullptr) != 1) {
        fail("cannot load tls_trusted_certificate \"" + tls.trusted_certificate + "\"");
      }
    } else if (SSL_CTX_set_default_verify_paths(context_) != 1) {
      fail("cannot load the system's CA certificates for tls_verify");
    }
  }
  // A server that closes without a close_notify (killed, or CLIENT KILL)
  // closed the connection, as nginx's contexts take it: not a TLS error.
  // (libevent's "dirty shutdown" would also take a reset for a close.)
  SSL_CTX_set_options(context_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Verifying, a certificate that does not verify ends the handshake: the
  // client sends nothing to a server it does not trust.
  SSL_CTX_set_verify(context_, tls.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
}

LibeventTls::~LibeventTls() {
  SSL_CTX_free(context_);
}

bufferevent* LibeventTls::new_bufferevent(event_base* base, const std::string& name, std::string* error) const {
  SSL* ssl = SSL_new(context_);
  if (ssl == nullptr) {
    *error = "cannot start TLS: " + openssl_error();
    return nullptr;
  }
  const bool address = is_ip_address(name);
  // SNI names a host, never an address.
  if (!name.empty() && !address && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    SSL_free(ssl);
    *error = "cannot set the TLS server name";
    return nullptr;
  }
  if (verify_ && !name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set = address ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                            : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (set != 1) {
      SSL_free(ssl);
      *error = "cannot check the TLS certificate for \"" + name + "\"";
      return nullptr;
    }
  }
  // The bufferevent owns `ssl` from here: freeing it frees both (and the socket).
  bufferevent* event = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  if (event == nullptr) {
    // Out of memory; whether libevent freed `ssl` depends on where it failed:
    // leaked rather than freed twice.
    *error = "cannot start TLS";
    return nullptr;
  }
  return event;
}

std::string LibeventTls::failure(bufferevent* event, const std::string& name, bool handshaken) {
  SSL* ssl = bufferevent_openssl_get_ssl(event);
  // Without SSL_VERIFY_PEER OpenSSL still records a result, which decided nothing.
  const bool verified = ssl != nullptr && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
  const long result = verified ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    return "TLS certificate does not match \"" + name + "\"";
  }
  if (result != X509_V_OK) {
    return "TLS certificate verify error: (" + std::to_string(result) + ":" + X509_verify_cert_error_string(result) +
           ")";
  }
  // libevent keeps the bufferevent's errors and hands them back newest
  // first: OpenSSL's, after SSL_get_error's code (no library: not one of
  // OpenSSL's errors). The oldest of OpenSSL's is the cause.
  unsigned long cause = 0;
  while (const unsigned long code = bufferevent_get_openssl_error(event)) {
    if (ERR_GET_LIB(code) != 0) {
      cause = code;
    }
  }
  if (cause == 0) {
    return {};
  }
  char text[256];
  ERR_error_string_n(cause, text, sizeof(text));
  return (handshaken ? "" : "TLS handshake failed: ") + std::string(text);
}

}  // namespace rate_guard::testing
