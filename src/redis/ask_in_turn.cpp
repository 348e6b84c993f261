#include "redis/ask_in_turn.h"

#include <hiredis/hiredis.h>

namespace rate_guard {

AskInTurn::AskInTurn(EventLoop& loop, std::string what, RedisLog& log, const RedisTls& tls)
    : loop_(loop), what_(std::move(what)), log_(log), connection_(loop, tls) {
  timer_ = loop_.make_timer(
      [this] {
        log_.error(server_text() + " did not answer in time");
        next_server();
      },
      false);
}

AskInTurn::~AskInTurn() {
  shutdown();
}

void AskInTurn::shutdown() {
  timer_->disarm();
  accept_ = nullptr;
  done_ = nullptr;
  connection_.close();
}

std::string AskInTurn::server_text() const {
  return what_ + " " + endpoint_text(question_.servers[asking_]);
}

void AskInTurn::ask(Question question, Accept accept, Done done) {
  connection_.close();
  question_ = std::move(question);
  accept_ = std::move(accept);
  done_ = std::move(done);
  ask_server(0);
}

void AskInTurn::ask_server(size_t index) {
  timer_->disarm();
  if (index >= question_.servers.size()) {
    finish(false);
    return;
  }
  asking_ = index;
  std::string error;
  const bool opened = connection_.open(
      {question_.servers[index], ""},
      [this](std::string_view reason) {
        if (!connection_.was_made()) {
          log_.error("cannot connect to " + server_text() + ": " + std::string(reason));
        }
        ask_server(asking_ + 1);
      },
      &error);
  if (!opened) {
    log_.error("cannot connect to " + server_text() + ": " + error);
    ask_server(index + 1);
    return;
  }
  connection_.send_auth(question_.username, question_.password, nullptr, nullptr);
  std::vector<std::string_view> command(question_.command.begin(), question_.command.end());
  connection_.send(command, on_reply, this);
  timer_->arm(question_.timeout_ms);
}

void AskInTurn::next_server() {
  connection_.close();
  ask_server(asking_ + 1);
}

void AskInTurn::finish(bool answered) {
  timer_->disarm();
  Done done = std::move(done_);
  done_ = nullptr;
  accept_ = nullptr;
  if (done) {
    done(answered);
  }
}

void AskInTurn::on_reply(void* data, redisReply* reply) {
  auto* self = static_cast<AskInTurn*>(data);
  if (reply == nullptr || !self->accept_) {
    return;  // closed, or a question abandoned
  }
  std::string error;
  if (!self->accept_(reply, self->question_.servers[self->asking_], &error)) {
    self->log_.error(self->server_text() + ": " + error);
    self->next_server();
    return;
  }
  self->connection_.close();
  self->finish(true);
}

}  // namespace rate_guard
