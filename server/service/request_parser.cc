#include "server/service/request_parser.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "server/common/errors.h"
#include "server/common/serialize.h"

namespace weft::service {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// Message levels below the request's own: two per plan level (PlanNode and
// its kind's message), three per level of an argument's value (Value,
// Struct, map entry), and four around them (the LazyValue of a
// CreateLazyValueRequest, CallNode, args' Struct, its map entry). The same
// bound as plan::MessageNesting, less the outermost message.
int RecursionLimit(int max_plan_depth, int max_value_depth) {
  return 2 * max_plan_depth + 3 * max_value_depth + 4;
}

// Why parsing failed, found by walking the wire format with an explicit
// stack (so the walk itself cannot overflow): which message nests too deeply,
// and where.
class NestingScanner {
 public:
  NestingScanner(const Descriptor* root, int max_plan_depth,
                 int max_value_depth)
      : max_plan_depth_(max_plan_depth),
        max_value_depth_(max_value_depth),
        plan_node_(
            root->file()->pool()->FindMessageTypeByName("weft.v1.PlanNode")) {
    frames_.push_back({root, 0, 0, ""});
  }

  absl::Status Scan(absl::string_view bytes) {
    frames_[0].end = bytes.size();
    size_t pos = 0;
    while (true) {
      while (frames_.size() > 1 && pos == frames_.back().end)
        frames_.pop_back();
      if (frames_.size() == 1 && pos == bytes.size()) break;
      Frame& frame = frames_.back();
      uint64_t tag;
      if (!ReadVarint(bytes, frame.end, &pos, &tag)) return Malformed();
      const int number = static_cast<int>(tag >> 3);
      switch (tag & 7) {
        case 0: {  // varint
          uint64_t ignored;
          if (!ReadVarint(bytes, frame.end, &pos, &ignored)) return Malformed();
          break;
        }
        case 1:  // fixed64
          if (frame.end - pos < 8) return Malformed();
          pos += 8;
          break;
        case 5:  // fixed32
          if (frame.end - pos < 4) return Malformed();
          pos += 4;
          break;
        case 2: {  // length-delimited
          uint64_t len;
          if (!ReadVarint(bytes, frame.end, &pos, &len) ||
              len > frame.end - pos) {
            return Malformed();
          }
          const FieldDescriptor* field =
              frame.type == nullptr ? nullptr
                                    : frame.type->FindFieldByNumber(number);
          if (field == nullptr ||
              field->type() != FieldDescriptor::TYPE_MESSAGE) {
            pos += len;
            break;
          }
          std::string element(field->name());
          if (field->is_repeated()) {
            absl::StrAppend(&element, "[", frame.seen[number]++, "]");
          }
          const Descriptor* type = field->message_type();
          int plan_depth = frame.plan_depth + (type == plan_node_ ? 1 : 0);
          frames_.push_back({type, pos + len, plan_depth, std::move(element)});
          if (plan_depth > max_plan_depth_) {
            return common::WithLimit(
                common::FieldError(
                    Path(),
                    absl::StrCat("the plan is nested deeper than ",
                                 max_plan_depth_,
                                 " levels, the limit (--max_plan_depth)")),
                common::kPlanTooDeep, "--max_plan_depth", max_plan_depth_);
          }
          if (static_cast<int>(frames_.size()) - 1 >
              RecursionLimit(max_plan_depth_, max_value_depth_)) {
            return common::WithLimit(
                common::FieldError(
                    Path(/*up_to=*/"args"),
                    absl::StrCat("arguments nest deeper than values may: at "
                                 "most ",
                                 max_value_depth_,
                                 " levels of lists and objects "
                                 "(--max_value_depth)")),
                common::kValueTooDeep, "--max_value_depth", max_value_depth_);
          }
          break;
        }
        default:  // Groups (deprecated) and invalid wire types.
          return Malformed();
      }
    }
    return Malformed();
  }

 private:
  struct Frame {
    const Descriptor* type;
    size_t end;
    int plan_depth;
    std::string element;
    absl::flat_hash_map<int, int> seen = {};
  };

  static bool ReadVarint(absl::string_view bytes, size_t end, size_t* pos,
                         uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (*pos >= end) return false;
      const uint8_t b = static_cast<uint8_t>(bytes[(*pos)++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;
  }

  // The path of the innermost frame, or of the outermost frame named
  // `up_to` when there is one.
  std::string Path(absl::string_view up_to = "") const {
    std::string path;
    for (size_t i = 1; i < frames_.size(); ++i) {
      if (i > 1) path += '.';
      path += frames_[i].element;
      if (!up_to.empty() && frames_[i].element == up_to) break;
    }
    return path;
  }

  absl::Status Malformed() const {
    return common::WithReason(absl::InvalidArgumentError(absl::StrCat(
                                  "the request is not a valid ",
                                  frames_[0].type->full_name(), " message")),
                              common::kMalformedRequest);
  }

  const int max_plan_depth_;
  const int max_value_depth_;
  const Descriptor* const plan_node_;
  std::vector<Frame> frames_;
};

}  // namespace

absl::Status ParseRequestBytes(absl::string_view bytes, int max_plan_depth,
                               int max_value_depth,
                               google::protobuf::Message* message) {
  google::protobuf::io::ArrayInputStream stream(bytes.data(),
                                                static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream input(&stream);
  input.SetRecursionLimit(RecursionLimit(max_plan_depth, max_value_depth));
  if (message->ParseFromCodedStream(&input) && input.ConsumedEntireMessage()) {
    return absl::OkStatus();
  }
  return NestingScanner(message->GetDescriptor(), max_plan_depth,
                        max_value_depth)
      .Scan(bytes);
}

absl::Status SerializeResponse(const google::protobuf::Message& message,
                               grpc::ByteBuffer* out) {
  return SerializeSizedResponse(message, message.ByteSizeLong(), out);
}

absl::Status SerializeSizedResponse(const google::protobuf::Message& message,
                                    size_t size, grpc::ByteBuffer* out) {
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return common::WithReason(
        absl::ResourceExhaustedError(
            absl::StrCat("the answer would be ", size,
                         " bytes, more than a gRPC message can carry")),
        common::kAnswerTooLarge);
  }
  grpc::ProtoBufferWriter writer(out, grpc::kProtoBufferWriterMaxBufferLength,
                                 static_cast<int>(size));
  common::SerializeDeterministicWithCachedSizes(message, &writer);
  return absl::OkStatus();
}

absl::Status ParseRequest(const grpc::ByteBuffer& bytes, int max_plan_depth,
                          int max_value_depth,
                          google::protobuf::Message* message) {
  grpc::ByteBuffer copy(bytes);  // Shares the slices; the reader consumes.
  {
    grpc::ProtoBufferReader reader(&copy);
    google::protobuf::io::CodedInputStream input(&reader);
    input.SetRecursionLimit(RecursionLimit(max_plan_depth, max_value_depth));
    if (message->ParseFromCodedStream(&input) &&
        input.ConsumedEntireMessage()) {
      return absl::OkStatus();
    }
  }
  // Rare: flatten and find out why.
  std::vector<grpc::Slice> slices;
  std::string flat;
  if (bytes.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      flat.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  message->Clear();
  return NestingScanner(message->GetDescriptor(), max_plan_depth,
                        max_value_depth)
      .Scan(flat);
}

}  // namespace weft::service
