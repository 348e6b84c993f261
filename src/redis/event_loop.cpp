#include "redis/event_loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

namespace rate_guard {

bool stream_sockaddr(const StreamAddress& address, sockaddr_storage* storage, socklen_t* length,
                     std::string* error) {
  std::memset(storage, 0, sizeof(*storage));
  if (!address.unix_path.empty()) {
    auto* un = reinterpret_cast<sockaddr_un*>(storage);
    if (address.unix_path.size() >= sizeof(un->sun_path)) {
      *error = "unix socket path too long";
      return false;
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, address.unix_path.data(), address.unix_path.size());
    *length = sizeof(sockaddr_un);
    return true;
  }
  // Hosts are resolved when the configuration loads: here they are addresses.
  const std::string host(address.host);
  auto* in4 = reinterpret_cast<sockaddr_in*>(storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(storage);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(address.port);
    *length = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    *length = sizeof(sockaddr_in6);
    return true;
  }
  *error = "not an IP address: " + host;
  return false;
}

}  // namespace rate_guard
