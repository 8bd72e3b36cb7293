// A small SecureDht peer on Debian's libopendht (2.4.12), driven line by line on stdin by
// Pamoja's tests and benchmarks. It has its own identity (RSA-4096, as Jami devices), so its
// gets return only what OpenDHT's SecureDht lets through: signed values that verify, and
// values encrypted to it, decrypted.
//
//   opendht_peer BOOTSTRAP_HOST BOOTSTRAP_PORT
//   < id                          > id <key id> <long location: SHA1(SHA-256(SPKI))>
//   < publish_long                > ok 1|0    (its certificate at the long location too)
//   < put_signed KEY TEXT         > ok 1|0
//   < put_encrypted KEY TO TEXT   > ok 1|0    (TO: recipient key id)
//   < get KEY                     > value <owner id|-> <1 if encrypted to us> <hex data> ... end
//   < find_cert ID                > cert <key id of what was found|none>
//   < get_cert_at HASH            > cert <key id> ... end  (certificates stored at HASH)
//   < bench_signed N              > ms <elapsed>  (N × put_signed then get, sequential)
//   < bench_encrypted N           > ms <elapsed>  (N × put_encrypted to itself then get)
//   < quit
#include <opendht.h>
#include <opendht/securedht.h>

#include <chrono>
#include <future>
#include <iostream>
#include <sstream>
#include <string>

using namespace dht;

static std::string hex(const Blob& b)
{
    static const char* d = "0123456789abcdef";
    std::string s;
    for (auto c : b) {
        s.push_back(d[c >> 4]);
        s.push_back(d[c & 15]);
    }
    return s;
}

static InfoHash key_of(const std::string& s)
{
    InfoHash h(s);
    return h ? h : InfoHash::get(s);
}

static bool wait_done(std::future<bool>& f)
{
    return f.wait_for(std::chrono::seconds(30)) == std::future_status::ready && f.get();
}

static bool put_signed(DhtRunner& node, const InfoHash& key, const std::string& text)
{
    auto p = std::make_shared<std::promise<bool>>();
    auto f = p->get_future();
    node.putSigned(key, Value(Blob(text.begin(), text.end())), [p](bool ok) { p->set_value(ok); });
    return wait_done(f);
}

static bool put_encrypted(DhtRunner& node, const InfoHash& key, const InfoHash& to, const std::string& text)
{
    auto p = std::make_shared<std::promise<bool>>();
    auto f = p->get_future();
    node.putEncrypted(key, to, Value(Blob(text.begin(), text.end())), [p](bool ok) { p->set_value(ok); });
    return wait_done(f);
}

static std::vector<std::shared_ptr<Value>> get(DhtRunner& node, const InfoHash& key)
{
    auto f = node.get(key);
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
        return {};
    return f.get();
}

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::cerr << "usage: opendht_peer BOOTSTRAP_HOST BOOTSTRAP_PORT" << std::endl;
        return 2;
    }
    auto ca = crypto::generateIdentity("opendht peer CA");
    auto id = crypto::generateIdentity("opendht peer", ca);
    DhtRunner node;
    DhtRunner::Config config;
    config.dht_config.id = id;
    config.threaded = true;
    node.run(0, config);
    node.bootstrap(argv[1], argv[2]);
    auto me = id.second->getId();
    auto long_location = InfoHash::get(id.second->getLongId().data(), id.second->getLongId().size());
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        if (cmd == "id") {
            std::cout << "id " << me << " " << long_location << std::endl;
        } else if (cmd == "publish_long") {
            auto p = std::make_shared<std::promise<bool>>();
            auto f = p->get_future();
            node.put(long_location, Value(CERTIFICATE_TYPE, *id.second), [p](bool ok) { p->set_value(ok); });
            std::cout << "ok " << wait_done(f) << std::endl;
        } else if (cmd == "put_signed") {
            std::string key, text;
            in >> key;
            std::getline(in >> std::ws, text);
            std::cout << "ok " << put_signed(node, key_of(key), text) << std::endl;
        } else if (cmd == "put_encrypted") {
            std::string key, to, text;
            in >> key >> to;
            std::getline(in >> std::ws, text);
            std::cout << "ok " << put_encrypted(node, key_of(key), InfoHash(to), text) << std::endl;
        } else if (cmd == "get") {
            std::string key;
            in >> key;
            for (const auto& v : get(node, key_of(key))) {
                std::string owner = v->owner ? v->owner->getId().toString() : "-";
                bool for_us = v->recipient == me;
                std::cout << "value " << owner << " " << for_us << " " << hex(v->data) << std::endl;
            }
            std::cout << "end" << std::endl;
        } else if (cmd == "find_cert") {
            std::string hash;
            in >> hash;
            auto p = std::make_shared<std::promise<std::shared_ptr<crypto::Certificate>>>();
            auto f = p->get_future();
            node.findCertificate(InfoHash(hash), [p](const std::shared_ptr<crypto::Certificate>& c) { p->set_value(c); });
            std::shared_ptr<crypto::Certificate> c;
            if (f.wait_for(std::chrono::seconds(30)) == std::future_status::ready)
                c = f.get();
            std::cout << "cert " << (c ? c->getId().toString() : std::string("none")) << std::endl;
        } else if (cmd == "get_cert_at") {
            std::string hash;
            in >> hash;
            for (const auto& v : get(node, InfoHash(hash))) {
                if (v->type != CERTIFICATE_TYPE.id)
                    continue;
                try {
                    crypto::Certificate c(v->data);
                    std::cout << "cert " << c.getId() << std::endl;
                } catch (const std::exception&) {
                }
            }
            std::cout << "end" << std::endl;
        } else if (cmd == "bench_signed" || cmd == "bench_encrypted") {
            int n = 0;
            in >> n;
            bool encrypted = cmd == "bench_encrypted";
            auto start = std::chrono::steady_clock::now();
            for (int i = 0; i < n; i++) {
                auto key = InfoHash::getRandom();
                bool ok = encrypted ? put_encrypted(node, key, me, "bench value")
                                    : put_signed(node, key, "bench value");
                auto found = get(node, key);
                if (!ok || found.empty()) {
                    std::cerr << "bench: round " << i << " failed" << std::endl;
                    return 1;
                }
            }
            auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
            std::cout << "ms " << ms << std::endl;
        } else if (cmd == "quit") {
            break;
        }
    }
    node.join();
    return 0;
}
