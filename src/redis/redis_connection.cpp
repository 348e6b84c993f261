#include "redis/redis_connection.h"

#include <hiredis/hiredis.h>

#include <cstdlib>

namespace rate_guard {

RedisConnection::RedisConnection(EventLoop& loop, const RedisTls& tls) : loop_(loop), tls_(tls) {}

RedisConnection::~RedisConnection() {
  close();
}

bool RedisConnection::open(const RedisAddress& address, LostFn lost, std::string* error) {
  close();
  address_ = address;
  made_ = false;
  const StreamAddress where{address_.endpoint.host, address_.endpoint.port, address_.unix_path, tls_.on,
                            tls_.name.empty() ? address_.endpoint.name : tls_.name};
  stream_ = loop_.connect(where, *this, error);
  if (!stream_) {
    return false;
  }
  reader_ = redisReaderCreate();
  if (reader_ == nullptr) {
    stream_.reset();
    *error = "out of memory";
    return false;
  }
  generation_++;
  lost_ = std::move(lost);
  return true;
}

void RedisConnection::close() {
  if (!stream_) {
    return;
  }
  stream_.reset();
  lost_ = nullptr;
  fail_awaited();  // after the reset: a reply callback may open() again
}

// The connection ended (by the stream, or a reply Redis's protocol does not
// allow): the replies awaited come back as nullptr, then `lost`.
void RedisConnection::ended(std::string_view reason) {
  const std::string why(reason);  // `reason` may live in the stream
  stream_.reset();                // may be the stream whose event this is: it allows it
  LostFn lost = std::move(lost_);
  lost_ = nullptr;
  fail_awaited();
  if (lost && !stream_) {  // not if a reply callback opened a new connection meanwhile
    lost(why);
  }
}

void RedisConnection::fail_awaited() {
  generation_++;
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  std::deque<Awaited> awaited;
  awaited.swap(awaited_);
  for (const Awaited& a : awaited) {
    if (a.reply != nullptr) {
      a.reply(a.data, nullptr);
    }
  }
}

void RedisConnection::stream_connected() {
  made_ = true;
}

void RedisConnection::stream_closed(std::string_view reason) {
  ended(reason);
}

// Replies are handed out in order; a callback may close or reopen the
// connection, and what was read for the old one is then dropped.
void RedisConnection::stream_data(const char* data, size_t size) {
  if (redisReaderFeed(reader_, data, size) != REDIS_OK) {
    ended("out of memory");
    return;
  }
  const uint64_t generation = generation_;
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      ended(std::string("protocol error: ") + reader_->errstr);
      return;
    }
    if (reply == nullptr) {
      return;  // the rest of a reply is still to come
    }
    if (awaited_.empty()) {
      freeReplyObject(reply);
      ended("a reply to no command");
      return;
    }
    const Awaited a = awaited_.front();
    if (!a.persistent) {
      awaited_.pop_front();
    }
    if (a.reply != nullptr) {
      a.reply(a.data, static_cast<redisReply*>(reply));
    }
    freeReplyObject(reply);
    if (generation != generation_) {
      return;
    }
  }
}

bool RedisConnection::send_formatted(const char* command, size_t length, ReplyFn reply, void* data) {
  if (!stream_) {
    return false;
  }
  stream_->write(command, length);
  awaited_.push_back({reply, data, false});
  return true;
}

bool RedisConnection::send_argv(size_t count, const char** argv, const size_t* lengths, ReplyFn reply, void* data,
                                bool persistent) {
  if (!stream_) {
    return false;
  }
  char* command = nullptr;
  const int length = redisFormatCommandArgv(&command, static_cast<int>(count), argv, lengths);
  if (length <= 0) {
    return false;
  }
  stream_->write(command, static_cast<size_t>(length));
  std::free(command);
  awaited_.push_back({reply, data, persistent});
  return true;
}

bool RedisConnection::send(const std::vector<std::string_view>& args, ReplyFn reply, void* data) {
  // Commands are few and small here (handshakes, questions): the argument
  // arrays may live on the stack.
  constexpr size_t kMaxArgs = 8;
  const char* argv[kMaxArgs];
  size_t lengths[kMaxArgs];
  if (args.size() > kMaxArgs) {
    return false;
  }
  for (size_t i = 0; i < args.size(); i++) {
    argv[i] = args[i].data();
    lengths[i] = args[i].size();
  }
  return send_argv(args.size(), argv, lengths, reply, data, false);
}

bool RedisConnection::send_auth(const std::string& username, const std::string& password, ReplyFn reply,
                                void* data) {
  if (password.empty()) {
    return true;
  }
  if (username.empty()) {
    return send({"AUTH", password}, reply, data);
  }
  return send({"AUTH", username, password}, reply, data);
}

bool RedisConnection::subscribe(std::string_view channel, ReplyFn message, void* data) {
  const char* argv[] = {"SUBSCRIBE", channel.data()};
  const size_t lengths[] = {9, channel.size()};
  return send_argv(2, argv, lengths, message, data, true);
}

}  // namespace rate_guard
